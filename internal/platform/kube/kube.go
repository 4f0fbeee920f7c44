// Package kube is the deploy target for a plain Kubernetes Deployment,
// watched in place: no new resource kinds, no copied workloads. It pins
// the revision serving before the deploy, follows the rollout as kubectl
// rollout status does, judges the new pods' health from the first second,
// and rolls back with the semantics of kubectl rollout undo --to-revision,
// always to the pinned revision.
package kube

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersappsv1 "k8s.io/client-go/listers/apps/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/platform/command"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// ClientOptions say how to reach the cluster, like kubectl's flags.
type ClientOptions struct {
	// Kubeconfig is an explicit kubeconfig file (--kubeconfig). Empty:
	// $KUBECONFIG, ~/.kube/config, then the in-cluster service account.
	Kubeconfig string
	Context    string
}

// RESTConfig loads the client configuration the way kubectl does; exec
// credential plugins work.
func RESTConfig(o ClientOptions) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.Context}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.UserAgent = "deploywatch"
	return cfg, nil
}

// Target watches one Deployment.
type Target struct {
	cs        kubernetes.Interface
	ns, name  string
	cfg       config.KubernetesTarget
	hooks     *command.Target
	factory   informers.SharedInformerFactory
	rsLister  listersappsv1.ReplicaSetLister
	podLister listerscorev1.PodLister
	stop      chan struct{}
	now       func() time.Time

	mu sync.Mutex
	// pinned is the revision serving before the deploy: the rollback target.
	pinned       *appsv1.ReplicaSet
	since        time.Time
	baseRestarts map[string]int32
	// newHash is the new ReplicaSet's pod-template-hash as the latest
	// health look saw it, so that queries and logs need not read it again.
	newHash string
}

var (
	_ watch.Platform       = (*Target)(nil)
	_ watch.HealthReporter = (*Target)(nil)
	_ watch.QueryVarser    = (*Target)(nil)
)

// New connects to the cluster and starts watching the namespace's
// ReplicaSets and pods. hooks runs the deploy command and the GitOps
// rollback_command. Close releases the watches.
func New(ctx context.Context, rc *rest.Config, cfg config.KubernetesTarget, hooks *command.Target) (*Target, error) {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return newTarget(ctx, cs, cfg, hooks)
}

func newTarget(ctx context.Context, cs kubernetes.Interface, cfg config.KubernetesTarget, hooks *command.Target) (*Target, error) {
	t := &Target{
		cs: cs, ns: cfg.Namespace, name: cfg.Deployment, cfg: cfg, hooks: hooks,
		stop: make(chan struct{}), now: time.Now,
	}
	// Watches, not polling: ReplicaSets and pods come from informers; the
	// Deployment itself is read fresh at each look, which also tells at
	// once when the API server cannot be reached.
	t.factory = informers.NewSharedInformerFactoryWithOptions(cs, 5*time.Minute, informers.WithNamespace(t.ns))
	rsInf := t.factory.Apps().V1().ReplicaSets()
	podInf := t.factory.Core().V1().Pods()
	t.rsLister, t.podLister = rsInf.Lister(), podInf.Lister()
	rsInformer, podInformer := rsInf.Informer(), podInf.Informer()
	t.factory.Start(t.stop)
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), rsInformer.HasSynced, podInformer.HasSynced) {
		t.Close()
		if _, err := cs.AppsV1().Deployments(t.ns).Get(ctx, t.name, metav1.GetOptions{}); err != nil {
			return nil, fmt.Errorf("watching namespace %s: %w", t.ns, err)
		}
		return nil, fmt.Errorf("watching namespace %s: the ReplicaSet and pod caches did not sync within 30s", t.ns)
	}
	return t, nil
}

// Close stops the watches.
func (t *Target) Close() {
	select {
	case <-t.stop:
	default:
		close(t.stop)
		t.factory.Shutdown()
	}
}

func (t *Target) deployment(ctx context.Context) (*appsv1.Deployment, error) {
	dep, err := t.cs.AppsV1().Deployments(t.ns).Get(ctx, t.name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("deployment %s/%s not found", t.ns, t.name)
		}
		return nil, fmt.Errorf("reading deployment %s/%s: %w", t.ns, t.name, err)
	}
	return dep, nil
}

func (t *Target) owned(dep *appsv1.Deployment) ([]*appsv1.ReplicaSet, error) {
	all, err := t.rsLister.ReplicaSets(t.ns).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	return ownedBy(dep, all), nil
}

// Current pins the revision serving before the deploy and returns it.
func (t *Target) Current(ctx context.Context, d watch.Deploy) (string, error) {
	dep, err := t.deployment(ctx)
	if err != nil {
		return "", err
	}
	owned, err := t.owned(dep)
	if err != nil {
		return "", err
	}
	pinned := servingBefore(dep, owned, d.AlreadyStarted)
	base := map[string]int32{}
	pods, _ := t.podLister.Pods(t.ns).List(labels.Everything())
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			base[p.Name+"/"+cs.Name] = cs.RestartCount
		}
	}
	t.mu.Lock()
	t.pinned, t.since, t.baseRestarts = pinned, d.StartedAt, base
	t.mu.Unlock()
	if pinned == nil {
		return "", nil
	}
	return strconv.FormatInt(revisionOf(pinned), 10), nil
}

// Deploy runs the deploy command (run's arguments after --, else
// target.kubernetes.deploy).
func (t *Target) Deploy(ctx context.Context, d watch.Deploy) error {
	if t.hooks == nil {
		return errors.New("nothing to deploy with: give a command after -- or set target.kubernetes.deploy")
	}
	return t.hooks.Deploy(ctx, d)
}

// Progress follows the rollout as kubectl rollout status does.
func (t *Target) Progress(ctx context.Context, d watch.Deploy) (watch.Progress, error) {
	dep, err := t.deployment(ctx)
	if err != nil {
		return watch.Progress{}, err
	}
	done, failed, msg := rolloutStatus(dep)
	return watch.Progress{Done: done, Failed: failed, Message: msg}, nil
}

// Health judges the pods of the new ReplicaSet and measures the traffic
// shift: the share of ready pods that run the new version.
func (t *Target) Health(ctx context.Context, d watch.Deploy) (watch.Health, error) {
	dep, err := t.deployment(ctx)
	if err != nil {
		return watch.Health{}, err
	}
	owned, err := t.owned(dep)
	if err != nil {
		return watch.Health{}, err
	}
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil {
		return watch.Health{}, fmt.Errorf("deployment selector: %w", err)
	}
	pods, err := t.podLister.Pods(t.ns).List(sel)
	if err != nil {
		return watch.Health{}, err
	}
	newRS := newReplicaSet(dep, owned)
	h := watch.Health{NewShare: math.NaN(), Summary: "the new ReplicaSet does not exist yet"}
	if newRS == nil {
		return h, nil
	}
	hash := newRS.Labels[podTemplateHash]
	t.mu.Lock()
	t.newHash = hash
	t.mu.Unlock()
	var newPods []*corev1.Pod
	readyNew, readyAll := 0, 0
	for _, p := range pods {
		r := podReady(p)
		if r {
			readyAll++
		}
		if p.Labels[podTemplateHash] == hash {
			newPods = append(newPods, p)
			if r {
				readyNew++
			}
		}
	}
	t.mu.Lock()
	base, since := t.baseRestarts, t.since
	t.mu.Unlock()
	h.Problems = podProblems(newPods, base, t.cfg.RestartLimit, t.cfg.NotReadyGrace.D(), since, t.now())
	if readyAll > 0 {
		h.NewShare = float64(readyNew) / float64(readyAll)
	}
	h.Summary = fmt.Sprintf("%d/%d new pods ready (revision %s); %d%% of ready pods run the new version",
		readyNew, len(newPods), newRS.Annotations[revisionAnnotation], int(math.Round(100*zeroIfNaN(h.NewShare))))
	return h, nil
}

func zeroIfNaN(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// QueryVars gives queries the namespace, the Deployment and the
// pod-template-hash of the version judged: the pinned ReplicaSet's for the
// baseline, the new one's after the deploy.
func (t *Target) QueryVars(ctx context.Context, d watch.Deploy, baseline bool) map[string]string {
	vars := map[string]string{config.VarNamespace: t.ns, config.VarDeployment: t.name}
	if baseline {
		t.mu.Lock()
		if t.pinned != nil {
			vars[config.VarPodTemplateHash] = t.pinned.Labels[podTemplateHash]
		}
		t.mu.Unlock()
		return vars
	}
	if hash := t.newVersionHash(ctx); hash != "" {
		vars[config.VarPodTemplateHash] = hash
	}
	return vars
}

// newVersionHash is the new ReplicaSet's pod-template-hash: the one the
// latest health look saw (the engine looks before every tick), else read
// now; "" before the controller created it.
func (t *Target) newVersionHash(ctx context.Context) string {
	t.mu.Lock()
	hash := t.newHash
	t.mu.Unlock()
	if hash != "" {
		return hash
	}
	dep, err := t.deployment(ctx)
	if err != nil {
		return ""
	}
	owned, err := t.owned(dep)
	if err != nil {
		return ""
	}
	if rs := newReplicaSet(dep, owned); rs != nil {
		return rs.Labels[podTemplateHash]
	}
	return ""
}

// Rollback returns the Deployment to the revision pinned at Start, unless
// a GitOps controller manages it and the config respects that.
func (t *Target) Rollback(ctx context.Context, d watch.Deploy) (watch.RollbackOutcome, error) {
	t.mu.Lock()
	pinned := t.pinned
	t.mu.Unlock()
	dep, err := t.deployment(ctx)
	if err != nil {
		return watch.RollbackOutcome{}, err
	}
	if who := gitOpsManager(dep.ObjectMeta); who != "" && t.cfg.GitOps == config.GitOpsRespect {
		note := fmt.Sprintf("the Deployment is managed by %s, which would revert an undo within seconds", who)
		if t.cfg.RollbackCommand == "" || t.hooks == nil {
			return watch.RollbackOutcome{Declined: true, Note: note + "; no rollback_command is set: roll back in Git"}, nil
		}
		if _, err := t.hooks.Rollback(ctx, d); err != nil {
			return watch.RollbackOutcome{Declined: true, Note: note}, fmt.Errorf("rollback_command: %w", err)
		}
		return watch.RollbackOutcome{Declined: true, Note: note + "; ran rollback_command"}, nil
	}
	if pinned == nil {
		return watch.RollbackOutcome{}, errors.New("no revision was serving before the deploy: nothing to roll back to")
	}
	start := t.now()
	res, err := t.undoTo(ctx, pinned.UID, false)
	if err != nil {
		return watch.RollbackOutcome{}, err
	}
	if err := t.waitAvailable(ctx); err != nil {
		return watch.RollbackOutcome{Note: res.Summary}, fmt.Errorf("after %s: %w", res.Summary, err)
	}
	return watch.RollbackOutcome{Note: fmt.Sprintf("%s; revision %d available again after %s",
		res.Summary, revisionOf(pinned), t.now().Sub(start).Round(100*time.Millisecond))}, nil
}

// waitAvailable follows the rollback until the Deployment is complete.
func (t *Target) waitAvailable(ctx context.Context) error {
	for {
		p, err := t.Progress(ctx, watch.Deploy{})
		switch {
		case err == nil && p.Done:
			return nil
		case err == nil && p.Failed:
			return errors.New(p.Message)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the rollback to become available: %w", context.Cause(ctx))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// LogLines reads the log lines the Deployment's pods wrote between since
// and until (only the new ReplicaSet's pods when newVersion is set). Pods
// whose logs cannot be read (no kubelet answering) make it an error, so the
// checklist skips the item rather than judging part of the logs.
func (t *Target) LogLines(ctx context.Context, since, until time.Time, newVersion bool) ([]string, error) {
	dep, err := t.deployment(ctx)
	if err != nil {
		return nil, err
	}
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil {
		return nil, err
	}
	pods, err := t.podLister.Pods(t.ns).List(sel)
	if err != nil {
		return nil, err
	}
	hash := ""
	if newVersion {
		hash = t.newVersionHash(ctx)
	}
	var lines []string
	for _, p := range pods {
		if hash != "" && p.Labels[podTemplateHash] != hash {
			continue
		}
		for _, c := range p.Spec.Containers {
			st := metav1.NewTime(since)
			req := t.cs.CoreV1().Pods(t.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name, SinceTime: &st, Timestamps: true})
			rc, err := req.Stream(ctx)
			if err != nil {
				return nil, fmt.Errorf("logs of pod %s container %s: %w", p.Name, c.Name, err)
			}
			sc := bufio.NewScanner(io.LimitReader(rc, 16<<20))
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				ts, line, _ := strings.Cut(sc.Text(), " ")
				if at, err := time.Parse(time.RFC3339Nano, ts); err == nil && at.After(until) {
					continue
				}
				lines = append(lines, p.Name+": "+line)
			}
			rc.Close()
		}
	}
	return lines, nil
}

// GitOpsManager names the GitOps controller managing the Deployment, or "".
func (t *Target) GitOpsManager(ctx context.Context) string {
	dep, err := t.deployment(ctx)
	if err != nil {
		return ""
	}
	return gitOpsManager(dep.ObjectMeta)
}

// Pause pauses the rollout, as kubectl rollout pause does.
func (t *Target) Pause(ctx context.Context, d watch.Deploy) error {
	_, err := t.cs.AppsV1().Deployments(t.ns).Patch(ctx, t.name, types.MergePatchType,
		[]byte(`{"spec":{"paused":true}}`), metav1.PatchOptions{FieldManager: "deploywatch"})
	if err != nil {
		return fmt.Errorf("pausing deployment %s/%s: %w", t.ns, t.name, err)
	}
	return nil
}

// UndoResult says what an undo did or would do.
type UndoResult struct {
	Revision int64
	// Skipped is set when the template already matches the revision.
	Skipped bool
	Patch   []byte
	Summary string
}

// Undo returns the Deployment to revision (0: the previous revision, as
// kubectl's default), with kubectl rollout undo's semantics: a paused
// Deployment is refused; a template that already matches is left alone;
// otherwise the ReplicaSet's template and annotations are patched back.
// dryRun computes the patch only.
//
// The revision is resolved once to its ReplicaSet, and retries aim at that
// ReplicaSet: an undo gives it a new revision number, so a retry after a
// network error that aimed at the number again would fail or, worse, "undo
// the undo" back to the bad version.
func (t *Target) Undo(ctx context.Context, revision int64, dryRun bool) (UndoResult, error) {
	dep, err := t.deployment(ctx)
	if err != nil {
		return UndoResult{}, err
	}
	owned, err := t.listOwned(ctx, dep)
	if err != nil {
		return UndoResult{}, err
	}
	var target *appsv1.ReplicaSet
	if revision == 0 {
		if len(owned) < 2 {
			return UndoResult{}, errors.New("no previous revision to roll back to")
		}
		target = owned[1]
	} else {
		for _, rs := range owned {
			if revisionOf(rs) == revision {
				target = rs
			}
		}
		if target == nil {
			return UndoResult{}, fmt.Errorf("revision %d of deployment %s/%s no longer exists (revisionHistoryLimit?)", revision, t.ns, t.name)
		}
	}
	return t.undoTo(ctx, target.UID, dryRun)
}

// undoTo undoes to the ReplicaSet uid, retrying what a retry can fix.
func (t *Target) undoTo(ctx context.Context, uid types.UID, dryRun bool) (UndoResult, error) {
	var res UndoResult
	var lastErr error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return res, lastErr
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		res, lastErr = t.undoOnce(ctx, uid, dryRun)
		if lastErr == nil || !transient(lastErr) {
			return res, lastErr
		}
	}
	return res, lastErr
}

// listOwned lists the Deployment's ReplicaSets fresh from the API: a
// rollback must not act on a stale cache.
func (t *Target) listOwned(ctx context.Context, dep *appsv1.Deployment) ([]*appsv1.ReplicaSet, error) {
	list, err := t.cs.AppsV1().ReplicaSets(t.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing replicasets: %w", err)
	}
	all := make([]*appsv1.ReplicaSet, 0, len(list.Items))
	for i := range list.Items {
		all = append(all, &list.Items[i])
	}
	return ownedBy(dep, all), nil
}

// transient reports whether retrying err may succeed: the API server
// overloaded or briefly unreachable, or a write that raced another.
func transient(err error) bool {
	var ne net.Error
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) || apierrors.IsConflict(err) ||
		errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF)
}

func (t *Target) undoOnce(ctx context.Context, uid types.UID, dryRun bool) (UndoResult, error) {
	dep, err := t.deployment(ctx)
	if err != nil {
		return UndoResult{}, err
	}
	if dep.Spec.Paused {
		return UndoResult{}, fmt.Errorf("deployment %s/%s is paused: resume it (kubectl rollout resume) before rolling back", t.ns, t.name)
	}
	owned, err := t.listOwned(ctx, dep)
	if err != nil {
		return UndoResult{}, err
	}
	var target *appsv1.ReplicaSet
	for _, rs := range owned {
		if rs.UID == uid {
			target = rs
		}
	}
	if target == nil {
		return UndoResult{}, fmt.Errorf("the ReplicaSet to roll back to (%s) no longer exists in %s/%s", uid, t.ns, t.name)
	}
	res := UndoResult{Revision: revisionOf(target)}
	if equalIgnoreHash(&target.Spec.Template, &dep.Spec.Template) {
		res.Skipped = true
		res.Summary = fmt.Sprintf("the template already matches revision %d: nothing to undo", res.Revision)
		return res, nil
	}
	res.Patch, err = undoPatch(dep, target)
	if err != nil {
		return res, err
	}
	if dryRun {
		res.Summary = fmt.Sprintf("would roll back to revision %d (dry run)", res.Revision)
		return res, nil
	}
	if _, err := t.cs.AppsV1().Deployments(t.ns).Patch(ctx, t.name, types.JSONPatchType, res.Patch,
		metav1.PatchOptions{FieldManager: "deploywatch"}); err != nil {
		return res, fmt.Errorf("patching deployment %s/%s back to revision %d: %w", t.ns, t.name, res.Revision, err)
	}
	res.Summary = fmt.Sprintf("patched the pod template back to revision %d", res.Revision)
	return res, nil
}
