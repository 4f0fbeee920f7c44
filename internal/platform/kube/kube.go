// Package kube is the deploy target for a plain Kubernetes workload (a
// Deployment, StatefulSet or DaemonSet), watched in place: no new resource
// kinds, no copied workloads. It pins the revision serving before the
// deploy, follows the rollout as kubectl rollout status does, judges the
// new pods' health from the first second, and rolls back with the
// semantics of kubectl rollout undo --to-revision, always to the pinned
// revision.
package kube

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
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

// Target watches one workload.
type Target struct {
	cs       kubernetes.Interface
	ns, name string
	cfg      config.KubernetesTarget
	hooks    *command.Target
	w        workload
	// selector is the workload's pod selector, immutable in apps/v1.
	selector  labels.Selector
	factory   informers.SharedInformerFactory
	podLister listerscorev1.PodLister
	stop      chan struct{}
	now       func() time.Time

	mu sync.Mutex
	// pinned is the revision serving before the deploy: the rollback target.
	pinned       *revision
	since        time.Time
	baseRestarts map[string]int32
	// newHash is the new revision's pod hash as the latest health look saw
	// it, so that queries and logs need not read it again.
	newHash string
	// deleted are the stuck pods a StatefulSet rollback deleted.
	deleted map[types.UID]bool
	// pinTemplate, when set, is the TemplateHash of the revision to pin at
	// Start, rather than the one serving before the deploy.
	pinTemplate string
	// seen keeps, by pod hash, the name of every pod of that revision seen
	// during the watch: a query over the time since the deploy must count
	// the pods the rollout has deleted since.
	seen map[string]map[string]bool
}

var (
	_ watch.Platform         = (*Target)(nil)
	_ watch.HealthReporter   = (*Target)(nil)
	_ watch.QueryVarser      = (*Target)(nil)
	_ watch.SideBySider      = (*Target)(nil)
	_ watch.Resumable        = (*Target)(nil)
	_ watch.RollbackFinisher = (*Target)(nil)
	_ watch.VersionReader    = (*Target)(nil)
)

// New connects to the cluster and starts watching the namespace's
// revisions (ReplicaSets or ControllerRevisions) and pods. hooks runs the
// deploy command and the GitOps rollback_command. Close releases the
// watches.
func New(ctx context.Context, rc *rest.Config, cfg config.KubernetesTarget, hooks *command.Target) (*Target, error) {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return newTarget(ctx, cs, cfg, hooks)
}

func newTarget(ctx context.Context, cs kubernetes.Interface, cfg config.KubernetesTarget, hooks *command.Target) (*Target, error) {
	_, name := cfg.Workload()
	t := &Target{
		cs: cs, ns: cfg.Namespace, name: name, cfg: cfg, hooks: hooks,
		w: newWorkload(cs, cfg.Namespace, cfg), stop: make(chan struct{}), now: time.Now,
		deleted: map[types.UID]bool{}, seen: map[string]map[string]bool{},
	}
	// Watches, not polling: revisions and pods come from informers; the
	// workload itself is read fresh at each look, which also tells at once
	// when the API server cannot be reached. The informers hold only the
	// objects the workload's selector matches (immutable in apps/v1; its
	// pods, and its ReplicaSets or ControllerRevisions, which carry the
	// template's labels), not the whole namespace.
	first, err := t.w.look(ctx, true)
	if err != nil {
		return nil, err
	}
	t.selector = first.selector
	t.factory = informers.NewSharedInformerFactoryWithOptions(cs, 5*time.Minute, informers.WithNamespace(t.ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = t.selector.String() }))
	revisionsSynced := t.w.watchRevisions(t.factory)
	podInf := t.factory.Core().V1().Pods()
	t.podLister = podInf.Lister()
	podInformer := podInf.Informer()
	t.factory.Start(t.stop)
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), revisionsSynced, podInformer.HasSynced) {
		t.Close()
		return nil, fmt.Errorf("watching %s: the revision and pod caches did not sync within 30s", t.what())
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

// what names the workload in messages: "deployment shop/api".
func (t *Target) what() string { return strings.ToLower(t.w.kind()) + " " + t.ns + "/" + t.name }

// Current pins the revision serving before the deploy and returns its
// number. begun says the deploy was started by someone else: the newest
// revision may then already be the new one.
func (t *Target) Current(ctx context.Context, d watch.Deploy, begun bool) (string, error) {
	s, err := t.w.look(ctx, false)
	if err != nil {
		return "", err
	}
	if s.unsupported != "" {
		return "", errors.New(s.unsupported)
	}
	pinned := servingBefore(s.revisions, s.current, begun)
	if t.pinTemplate != "" {
		if r := s.byTemplate(t.pinTemplate, s.current); r != nil {
			pinned = r
		}
	}
	base := map[string]int32{}
	pods := t.podsOf("")
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
	return strconv.FormatInt(pinned.number, 10), nil
}

// PinTemplate makes Start pin the revision whose template has this
// TemplateHash (the newest such, other than the new one), if the workload
// still has it: serve pins the last version it knew stable, which is not
// the one serving before the deploy when several changes came while no
// one watched, or when a change supersedes another's watch.
func (t *Target) PinTemplate(hash string) { t.pinTemplate = hash }

// ChangedAt is when the workload's current template was first applied:
// its revision's creation (a ReplicaSet or ControllerRevision is made when
// a template is new). The zero time before the controller made it.
func (t *Target) ChangedAt(ctx context.Context) (time.Time, error) {
	s, err := t.w.look(ctx, false)
	if err != nil || s.current == nil {
		return time.Time{}, err
	}
	return s.current.created, nil
}

// savedState is the target's record of a watch, kept in the watch's state:
// the pinned revision by its object's UID (an undo renumbers it, so its
// number is only a reminder) and the restart counts at Start.
type savedState struct {
	PinnedUID      types.UID        `json:"pinned_uid,omitempty"`
	PinnedRevision int64            `json:"pinned_revision,omitempty"`
	Since          time.Time        `json:"since"`
	BaseRestarts   map[string]int32 `json:"base_restarts,omitempty"`
	// Pods are the pods seen so far, by pod hash: $pods still names those
	// a rollout deleted before the watch was resumed.
	Pods map[string][]string `json:"pods,omitempty"`
}

// SaveState returns the pinned revision and the restart counts at Start.
func (t *Target) SaveState() (json.RawMessage, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := savedState{Since: t.since, BaseRestarts: t.baseRestarts, Pods: make(map[string][]string, len(t.seen))}
	for hash, names := range t.seen {
		st.Pods[hash] = slices.Sorted(maps.Keys(names))
	}
	if t.pinned != nil {
		st.PinnedUID, st.PinnedRevision = t.pinned.uid, t.pinned.number
	}
	return json.Marshal(st)
}

// RestoreState takes up the record of a watch saved by another process:
// the pinned revision is found again by its UID, whatever its number is
// now.
func (t *Target) RestoreState(ctx context.Context, d watch.Deploy, saved json.RawMessage) error {
	var st savedState
	if err := json.Unmarshal(saved, &st); err != nil {
		return fmt.Errorf("%w: the saved Kubernetes record: %v", watch.ErrStateCorrupt, err)
	}
	t.mu.Lock()
	t.since, t.baseRestarts = st.Since, st.BaseRestarts
	for hash, names := range st.Pods {
		t.seen[hash] = map[string]bool{}
		for _, name := range names {
			t.seen[hash][name] = true
		}
	}
	t.mu.Unlock()
	if st.PinnedUID == "" {
		return nil
	}
	var s *snapshot
	var err error
	for attempt := range 3 {
		if s, err = t.w.look(ctx, true); err == nil || !transient(err) {
			break
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("finding the pinned revision again: %w", err)
	}
	pinned := s.byUID(st.PinnedUID)
	if pinned == nil {
		return fmt.Errorf("the pinned revision %d (%s) no longer exists in %s: a rollback has nothing to return to", st.PinnedRevision, st.PinnedUID, t.what())
	}
	t.mu.Lock()
	t.pinned = pinned
	t.mu.Unlock()
	return nil
}

// Running returns the number of the revision whose template the workload
// has now, as Current names revisions; "" before the controller made it.
func (t *Target) Running(ctx context.Context, d watch.Deploy) (string, error) {
	s, err := t.w.look(ctx, false)
	if err != nil || s.current == nil {
		return "", err
	}
	return strconv.FormatInt(s.current.number, 10), nil
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
	s, err := t.w.look(ctx, false)
	if err != nil {
		return watch.Progress{}, err
	}
	return watch.Progress{Done: s.rollout.done, Failed: s.rollout.failed, Message: s.rollout.message}, nil
}

// Health judges the pods of the new revision and measures the traffic
// shift: the share of ready pods that run the new version.
func (t *Target) Health(ctx context.Context, d watch.Deploy) (watch.Health, error) {
	s, err := t.w.look(ctx, false)
	if err != nil {
		return watch.Health{}, err
	}
	pods := t.podsOf("")
	h := watch.Health{NewShare: math.NaN(), Summary: "the controller has not made the new revision yet"}
	if s.current == nil {
		return h, nil
	}
	hash := s.current.podHash
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
		if p.Labels[t.w.hashLabel()] == hash {
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
	h.Summary = fmt.Sprintf("%d/%d new pods ready (revision %d); %d%% of ready pods run the new version",
		readyNew, len(newPods), s.current.number, int(math.Round(100*zeroIfNaN(h.NewShare))))
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

// QueryVars gives queries the namespace, the workload's name, and the pod
// hash and pod names of the version judged: the pinned revision's for the
// baseline, the new one's after the deploy.
func (t *Target) QueryVars(ctx context.Context, d watch.Deploy, baseline bool) map[string]string {
	if baseline {
		return t.varsOf(t.pinnedHash())
	}
	return t.varsOf(t.newVersionHash(ctx))
}

// SideBySide gives the query variables of the new revision's pods and of
// the pinned revision's while both have ready pods: during a rolling
// update, which compares them over the same time. A StatefulSet's pods
// keep their names across revisions (api-2 is old, then new), so its pods
// cannot be told apart by name over time: it is not compared.
func (t *Target) SideBySide(ctx context.Context, d watch.Deploy) (newVars, oldVars map[string]string, ok bool) {
	if t.w.kind() == config.KindStatefulSet {
		return nil, nil, false
	}
	oldHash, newHash := t.pinnedHash(), t.newVersionHash(ctx)
	if oldHash == "" || newHash == "" || oldHash == newHash {
		return nil, nil, false
	}
	if !slices.ContainsFunc(t.podsOf(newHash), podReady) || !slices.ContainsFunc(t.podsOf(oldHash), podReady) {
		return nil, nil, false
	}
	return t.varsOf(newHash), t.varsOf(oldHash), true
}

func (t *Target) pinnedHash() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pinned == nil {
		return ""
	}
	return t.pinned.podHash
}

// varsOf is the query variables of the pods with pod hash hash; without a
// hash, only the namespace and the workload. $pods names every pod of the
// revision seen during the watch, those deleted since included.
func (t *Target) varsOf(hash string) map[string]string {
	vars := map[string]string{config.VarNamespace: t.ns, config.VarDeployment: t.name, config.VarWorkload: t.name}
	if hash == "" {
		return vars
	}
	vars[config.VarPodTemplateHash] = hash
	t.mu.Lock()
	names := t.seen[hash]
	if names == nil {
		names = map[string]bool{}
		t.seen[hash] = names
	}
	for _, p := range t.podsOf(hash) {
		names[p.Name] = true
	}
	quoted := make([]string, 0, len(names))
	for _, name := range slices.Sorted(maps.Keys(names)) {
		quoted = append(quoted, regexp.QuoteMeta(name))
	}
	t.mu.Unlock()
	vars[config.VarPods] = strings.Join(quoted, "|")
	return vars
}

// podsOf lists, from the cache, the workload's pods that run the revision
// with pod hash hash, or all of them when hash is "".
func (t *Target) podsOf(hash string) []*corev1.Pod {
	pods, _ := t.podLister.Pods(t.ns).List(t.selector)
	if hash == "" {
		return pods
	}
	out := pods[:0]
	for _, p := range pods {
		if p.Labels[t.w.hashLabel()] == hash {
			out = append(out, p)
		}
	}
	return out
}

// newVersionHash is the new revision's pod hash: the one the latest health
// look saw (the engine looks before every tick), else read now; "" before
// the controller made it.
func (t *Target) newVersionHash(ctx context.Context) string {
	t.mu.Lock()
	hash := t.newHash
	t.mu.Unlock()
	if hash != "" {
		return hash
	}
	s, err := t.w.look(ctx, false)
	if err != nil || s.current == nil {
		return ""
	}
	return s.current.podHash
}

// Rollback returns the workload to the revision pinned at Start, unless a
// GitOps controller manages it and the config respects that.
func (t *Target) Rollback(ctx context.Context, d watch.Deploy) (watch.RollbackOutcome, error) {
	t.mu.Lock()
	pinned := t.pinned
	t.mu.Unlock()
	var s *snapshot
	err := retryTransient(ctx, func(ctx context.Context) error {
		var err error
		s, err = t.w.look(ctx, false)
		return err
	})
	if err != nil {
		return watch.RollbackOutcome{}, err
	}
	if who := gitOpsManager(s.meta); who != "" && t.cfg.GitOps == config.GitOpsRespect {
		note := fmt.Sprintf("the %s is managed by %s, which would revert an undo within seconds", t.w.kind(), who)
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
	res, err := t.rollBackTo(ctx, pinned)
	return watch.RollbackOutcome{Note: res.Summary}, err
}

// FinishRollback finishes a rollback that was under way when deploywatch
// stopped. An undo to the pinned revision is itself safe to repeat: it is
// aimed at the revision's UID and skipped when the template already
// matches, so the revision numbers do not move; the rollback is then only
// followed until it is out. A GitOps-managed workload's rollback_command
// is not run a second time.
func (t *Target) FinishRollback(ctx context.Context, d watch.Deploy) (watch.RollbackOutcome, error) {
	var s *snapshot
	err := retryTransient(ctx, func(ctx context.Context) error {
		var err error
		s, err = t.w.look(ctx, false)
		return err
	})
	if err != nil {
		return watch.RollbackOutcome{}, err
	}
	if who := gitOpsManager(s.meta); who != "" && t.cfg.GitOps == config.GitOpsRespect && t.cfg.RollbackCommand != "" {
		return watch.RollbackOutcome{Declined: true, Note: fmt.Sprintf("the %s is managed by %s; rollback_command may have run before deploywatch stopped and is not run again", t.w.kind(), who)}, nil
	}
	return t.Rollback(ctx, d)
}

// rollBackTo undoes to the revision to, then follows the rollback until
// the workload is rolled out again (unsticking a StatefulSet, see
// waitAvailable), within target.kubernetes.timeouts.rollback. The engine
// lets a rollback finish even when the watch is being stopped; one that
// never becomes available must still end.
func (t *Target) rollBackTo(ctx context.Context, to *revision) (UndoResult, error) {
	if limit := t.cfg.Timeouts.Rollback.D(); limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, limit,
			fmt.Errorf("not rolled out within %s (target.kubernetes.timeouts.rollback)", config.FormatDuration(limit)))
		defer cancel()
	}
	start := t.now()
	res, err := t.undoTo(ctx, to.uid, false)
	if err != nil {
		return res, err
	}
	if err := t.waitAvailable(ctx, to); err != nil {
		return res, fmt.Errorf("after %s: %w", res.Summary, err)
	}
	res.Summary += fmt.Sprintf("; revision %d available again after %s", to.number, t.now().Sub(start).Round(100*time.Millisecond))
	t.mu.Lock()
	if n := len(t.deleted); n > 0 {
		res.Summary += fmt.Sprintf(" (deleted %d stuck pod(s) of the bad revision, which a StatefulSet does not replace by itself)", n)
	}
	t.mu.Unlock()
	return res, nil
}

// waitAvailable follows the rollback until the workload is rolled out.
// A StatefulSet with the default OrderedReady policy waits for a broken pod
// to become ready before it replaces it, which it never does: the
// Kubernetes documentation's "forced rollback" is to delete such pods after
// reverting the template, and that is done here, for the pods not ready on
// a revision other than the one rolled back to.
func (t *Target) waitAvailable(ctx context.Context, to *revision) error {
	for {
		s, err := t.w.look(ctx, false)
		switch {
		case err == nil && s.rollout.done:
			return nil
		case err == nil && s.rollout.failed:
			return errors.New(s.rollout.message)
		case err == nil && !t.w.replacesStuckPods():
			if err := t.deleteStuckPods(ctx, to); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the rollback to become available: %w", context.Cause(ctx))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// deleteStuckPods deletes the workload's pods that are not ready and run
// a revision other than to's, each once.
func (t *Target) deleteStuckPods(ctx context.Context, to *revision) error {
	for _, p := range t.podsOf("") {
		t.mu.Lock()
		done := t.deleted[p.UID]
		t.mu.Unlock()
		if done || p.DeletionTimestamp != nil || podReady(p) || p.Labels[t.w.hashLabel()] == to.podHash {
			continue
		}
		uid := p.UID
		err := t.cs.CoreV1().Pods(t.ns).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting stuck pod %s: %w", p.Name, err)
		}
		t.mu.Lock()
		t.deleted[uid] = true
		t.mu.Unlock()
	}
	return nil
}

// LogLines reads the log lines the workload's pods wrote between since and
// until (only the new revision's pods when newVersion is set). Pods whose
// logs cannot be read (no kubelet answering) make it an error, so the
// checklist skips the item rather than judging part of the logs.
func (t *Target) LogLines(ctx context.Context, since, until time.Time, newVersion bool) ([]string, error) {
	hash := ""
	if newVersion {
		hash = t.newVersionHash(ctx)
	}
	var lines []string
	for _, p := range t.podsOf(hash) {
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

// GitOpsManager names the GitOps controller managing the workload, or "".
func (t *Target) GitOpsManager(ctx context.Context) string {
	s, err := t.w.look(ctx, false)
	if err != nil {
		return ""
	}
	return gitOpsManager(s.meta)
}

// Kind is the kind of the workload watched, as in config.KindDeployment.
func (t *Target) Kind() string { return t.w.kind() }

// Pause pauses the rollout, as kubectl rollout pause does (Deployments
// only).
func (t *Target) Pause(ctx context.Context, d watch.Deploy) error {
	if err := t.w.pause(ctx); err != nil {
		return fmt.Errorf("pausing %s: %w", t.what(), err)
	}
	return nil
}

// UndoResult says what an undo did or would do.
type UndoResult struct {
	Revision int64
	// Skipped is set when the template already matches the revision.
	Skipped   bool
	PatchType types.PatchType
	Patch     []byte
	Summary   string
}

// Undo returns the workload to revision (0: the previous revision, as
// kubectl's default), with kubectl rollout undo's semantics: a paused
// Deployment is refused; a template that already matches is left alone;
// otherwise the revision's template is patched back (and, for a
// Deployment, its annotations). Then it follows the rollback as Rollback
// does, so a stuck StatefulSet recovers. dryRun computes the patch only.
//
// The revision is resolved once to its object, and retries aim at that
// object: an undo gives it a new revision number, so a retry after a
// network error that aimed at the number again would fail or, worse, "undo
// the undo" back to the bad version.
func (t *Target) Undo(ctx context.Context, revision int64, dryRun bool) (UndoResult, error) {
	s, err := t.w.look(ctx, true)
	if err != nil {
		return UndoResult{}, err
	}
	target := s.byNumber(revision)
	switch {
	case revision == 0 && len(s.revisions) < 2:
		return UndoResult{}, errors.New("no previous revision to roll back to")
	case revision == 0:
		target = s.revisions[1]
	case target == nil:
		return UndoResult{}, fmt.Errorf("revision %d of %s no longer exists (revisionHistoryLimit?)", revision, t.what())
	}
	if dryRun {
		return t.undoTo(ctx, target.uid, true)
	}
	return t.rollBackTo(ctx, target)
}

// undoTo undoes to the revision whose object is uid, retrying what a retry
// can fix.
func (t *Target) undoTo(ctx context.Context, uid types.UID, dryRun bool) (UndoResult, error) {
	var res UndoResult
	err := retryTransient(ctx, func(ctx context.Context) error {
		var err error
		res, err = t.undoOnce(ctx, uid, dryRun)
		return err
	})
	return res, err
}

// retryTransient runs f until it succeeds or fails in a way a retry cannot
// fix (resets, an API server briefly unreachable or overloaded, a
// partition are retried) for up to undoRetryFor, each try bounded by
// undoAttempt so that a connection into a black hole is given up and
// tried anew.
func retryTransient(ctx context.Context, f func(context.Context) error) error {
	var lastErr error
	deadline := time.Now().Add(undoRetryFor)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			wait := min(time.Duration(1<<min(attempt-1, 3))*time.Second, 5*time.Second)
			if time.Now().Add(wait).After(deadline) {
				return fmt.Errorf("%w (still failing after %s of retries)", lastErr, undoRetryFor)
			}
			select {
			case <-ctx.Done():
				return lastErr
			case <-time.After(wait):
			}
		}
		actx, cancel := context.WithTimeout(ctx, undoAttempt)
		lastErr = f(actx)
		timedOut := actx.Err() != nil && ctx.Err() == nil
		cancel()
		if lastErr == nil || !transient(lastErr) && !timedOut {
			return lastErr
		}
	}
}

// The undo's retry budget: a rollback rides out a partition of this long,
// each try given this long before it is abandoned for the next.
const (
	undoRetryFor = time.Minute
	undoAttempt  = 15 * time.Second
)

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
	s, err := t.w.look(ctx, true)
	if err != nil {
		return UndoResult{}, err
	}
	target := s.byUID(uid)
	if target == nil {
		return UndoResult{}, fmt.Errorf("the revision to roll back to (%s) no longer exists in %s", uid, t.what())
	}
	res := UndoResult{Revision: target.number}
	if s.paused {
		return res, fmt.Errorf("%s is paused: resume it (kubectl rollout resume) before rolling back", t.what())
	}
	if equalIgnoreHash(target.template, s.template) {
		res.Skipped = true
		res.Summary = fmt.Sprintf("the template already matches revision %d: nothing to undo", res.Revision)
		return res, nil
	}
	res.PatchType, res.Patch, err = t.w.undo(ctx, s, target, dryRun)
	if err != nil {
		return res, fmt.Errorf("patching %s back to revision %d: %w", t.what(), res.Revision, err)
	}
	if dryRun {
		res.Summary = fmt.Sprintf("would roll back to revision %d (dry run)", res.Revision)
		return res, nil
	}
	res.Summary = fmt.Sprintf("patched the pod template back to revision %d", res.Revision)
	return res, nil
}
