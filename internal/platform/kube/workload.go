package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/deploywatch/deploywatch/internal/config"
)

// revision is one version of a workload's pod template: a ReplicaSet of a
// Deployment, a ControllerRevision of a StatefulSet or DaemonSet.
type revision struct {
	uid    types.UID
	number int64
	// podHash is the value of the kind's hash label on this revision's pods.
	podHash  string
	template *corev1.PodTemplateSpec
	// rs is set for a Deployment's revision: its annotations go back with
	// an undo.
	rs *appsv1.ReplicaSet
	// data is a ControllerRevision's data: the strategic merge patch that
	// restores it.
	data []byte
	// created is when the revision was made: when its template was first
	// applied.
	created time.Time
}

// snapshot is a workload as one look saw it.
type snapshot struct {
	meta     metav1.ObjectMeta
	selector labels.Selector
	template *corev1.PodTemplateSpec
	paused   bool
	// rollout is kubectl rollout status's reading.
	rollout rolloutState
	// revisions are the workload's own, newest first.
	revisions []*revision
	// current is the revision of the current template; nil before the
	// controller made it.
	current *revision
	// unsupported says why deploywatch cannot follow this workload's
	// rollouts, if it cannot.
	unsupported string
}

type rolloutState struct {
	done, failed bool
	message      string
}

// byUID finds a revision by its object's UID.
func (s *snapshot) byUID(uid types.UID) *revision {
	for _, r := range s.revisions {
		if r.uid == uid {
			return r
		}
	}
	return nil
}

// byTemplate finds the newest revision, other than not, whose template has
// the TemplateHash hash.
func (s *snapshot) byTemplate(hash string, not *revision) *revision {
	for _, r := range s.revisions {
		if r != not && TemplateHash(r.template) == hash {
			return r
		}
	}
	return nil
}

// byNumber finds a revision by its number.
func (s *snapshot) byNumber(n int64) *revision {
	for _, r := range s.revisions {
		if r.number == n {
			return r
		}
	}
	return nil
}

// workload is what differs between the kinds deploywatch watches in place.
type workload interface {
	// kind is the workload's kind, as in config.KindDeployment.
	kind() string
	// hashLabel is the pod label that tells which revision a pod runs.
	hashLabel() string
	// watchRevisions registers the informer of the kind's revision objects
	// (ReplicaSets or ControllerRevisions) with the factory, which filters
	// them by the workload's selector, and returns its sync check.
	watchRevisions(f informers.SharedInformerFactory) cache.InformerSynced
	// look reads the workload fresh from the API and its revisions, from the
	// informer cache, or fresh from the API when fresh is set (a rollback
	// must not act on a stale cache).
	look(ctx context.Context, fresh bool) (*snapshot, error)
	// undo returns the workload to rev as kubectl rollout undo does: the
	// patch and its type; dryRun computes the patch only.
	undo(ctx context.Context, s *snapshot, rev *revision, dryRun bool) (types.PatchType, []byte, error)
	// pause stops the rollout where it is.
	pause(ctx context.Context) error
	// replacesStuckPods says whether the controller replaces, after an
	// undo, a pod of the bad revision that never became ready. A
	// StatefulSet with OrderedReady waits for it forever instead.
	replacesStuckPods() bool
}

var (
	_ workload = (*deployment)(nil)
	_ workload = (*statefulSet)(nil)
	_ workload = (*daemonSet)(nil)
)

func newWorkload(cs kubernetes.Interface, ns string, cfg config.KubernetesTarget) workload {
	kind, name := cfg.Workload()
	switch kind {
	case config.KindStatefulSet:
		return &statefulSet{history{cs: cs, ns: ns, name: name}}
	case config.KindDaemonSet:
		return &daemonSet{history{cs: cs, ns: ns, name: name}}
	}
	return &deployment{cs: cs, ns: ns, name: name}
}

// readErr names the workload in an error from reading it.
func readErr(kind, ns, name string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %s/%s not found", strings.ToLower(kind), ns, name)
	}
	return fmt.Errorf("reading %s %s/%s: %w", strings.ToLower(kind), ns, name, err)
}

// deployment keeps its revisions in ReplicaSets.
type deployment struct {
	cs       kubernetes.Interface
	ns, name string
	lister   interface {
		List(labels.Selector) ([]*appsv1.ReplicaSet, error)
	}
}

func (d *deployment) kind() string            { return config.KindDeployment }
func (d *deployment) replacesStuckPods() bool { return true }
func (d *deployment) hashLabel() string       { return podTemplateHash }

func (d *deployment) watchRevisions(f informers.SharedInformerFactory) cache.InformerSynced {
	inf := f.Apps().V1().ReplicaSets()
	d.lister = inf.Lister().ReplicaSets(d.ns)
	return inf.Informer().HasSynced
}

func (d *deployment) look(ctx context.Context, fresh bool) (*snapshot, error) {
	dep, err := d.cs.AppsV1().Deployments(d.ns).Get(ctx, d.name, metav1.GetOptions{})
	if err != nil {
		return nil, readErr(d.kind(), d.ns, d.name, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment selector: %w", err)
	}
	all, err := d.replicaSets(ctx, fresh, sel)
	if err != nil {
		return nil, err
	}
	return deploymentSnapshot(dep, sel, all), nil
}

// replicaSets lists the ReplicaSets sel matches (a Deployment's carry its
// template's labels): from the informer's cache, or from the API when
// fresh is set.
func (d *deployment) replicaSets(ctx context.Context, fresh bool, sel labels.Selector) ([]*appsv1.ReplicaSet, error) {
	if !fresh {
		return d.lister.List(sel)
	}
	list, err := d.cs.AppsV1().ReplicaSets(d.ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("listing replicasets: %w", err)
	}
	return pointers(list.Items), nil
}

func pointers[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

// deploymentSnapshot reads a Deployment, its pod selector sel and the
// ReplicaSets among all that it owns.
func deploymentSnapshot(dep *appsv1.Deployment, sel labels.Selector, all []*appsv1.ReplicaSet) *snapshot {
	s := &snapshot{meta: dep.ObjectMeta, selector: sel, template: &dep.Spec.Template, paused: dep.Spec.Paused}
	s.rollout.done, s.rollout.failed, s.rollout.message = rolloutStatus(dep)
	owned := ownedBy(dep, all)
	newRS := newReplicaSet(dep, owned)
	for _, rs := range owned {
		r := &revision{uid: rs.UID, number: revisionOf(rs), podHash: rs.Labels[podTemplateHash], template: &rs.Spec.Template, rs: rs,
			created: rs.CreationTimestamp.Time}
		s.revisions = append(s.revisions, r)
		if rs == newRS {
			s.current = r
		}
	}
	return s
}

func (d *deployment) undo(ctx context.Context, s *snapshot, rev *revision, dryRun bool) (types.PatchType, []byte, error) {
	patch, err := undoPatch(s.meta.Annotations, rev.rs)
	if err != nil || dryRun {
		return types.JSONPatchType, patch, err
	}
	_, err = d.cs.AppsV1().Deployments(d.ns).Patch(ctx, d.name, types.JSONPatchType, patch, patchOptions())
	return types.JSONPatchType, patch, err
}

func (d *deployment) pause(ctx context.Context) error {
	_, err := d.cs.AppsV1().Deployments(d.ns).Patch(ctx, d.name, types.MergePatchType,
		[]byte(`{"spec":{"paused":true}}`), patchOptions())
	return err
}

// history is the ControllerRevision bookkeeping StatefulSets and
// DaemonSets share.
type history struct {
	cs       kubernetes.Interface
	ns, name string
	lister   interface {
		List(labels.Selector) ([]*appsv1.ControllerRevision, error)
	}
}

func (h *history) hashLabel() string { return appsv1.ControllerRevisionHashLabelKey }

func (h *history) watchRevisions(f informers.SharedInformerFactory) cache.InformerSynced {
	inf := f.Apps().V1().ControllerRevisions()
	h.lister = inf.Lister().ControllerRevisions(h.ns)
	return inf.Informer().HasSynced
}

// revisions lists the ControllerRevisions sel matches (they carry the
// template's labels) that uid owns, newest first: from the informer's
// cache, or from the API when fresh is set. podHash says which value of the
// hash label a revision's pods carry.
func (h *history) revisions(ctx context.Context, fresh bool, sel labels.Selector, uid types.UID, podHash func(*appsv1.ControllerRevision) string) ([]*revision, error) {
	var all []*appsv1.ControllerRevision
	if fresh {
		list, err := h.cs.AppsV1().ControllerRevisions(h.ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return nil, fmt.Errorf("listing controllerrevisions: %w", err)
		}
		all = pointers(list.Items)
	} else {
		var err error
		if all, err = h.lister.List(sel); err != nil {
			return nil, err
		}
	}
	return controllerRevisions(all, uid, podHash)
}

// snapshot reads the revisions of the workload described by meta,
// selector and template, and finds the current one: named by the status
// when the controller reports it (currentName, a StatefulSet's update
// revision), else the newest whose template is the workload's.
func (h *history) snapshot(ctx context.Context, fresh bool, meta metav1.ObjectMeta, selector *metav1.LabelSelector, template *corev1.PodTemplateSpec,
	podHash func(*appsv1.ControllerRevision) string, currentName string) (*snapshot, error) {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return nil, fmt.Errorf("%s selector: %w", meta.Name, err)
	}
	revs, err := h.revisions(ctx, fresh, sel, meta.UID, podHash)
	if err != nil {
		return nil, err
	}
	s := &snapshot{meta: meta, selector: sel, template: template}
	h.withCurrent(s, revs, currentName)
	return s, nil
}

// withCurrent fills the snapshot's revisions and finds the current one.
func (h *history) withCurrent(s *snapshot, revs []*revision, currentName string) {
	s.revisions = revs
	for _, r := range revs {
		if currentName != "" && r.podHash == currentName {
			s.current = r
			return
		}
	}
	for _, r := range revs {
		if equalIgnoreHash(r.template, s.template) {
			s.current = r
			return
		}
	}
}

// undo is kubectl's undo for ControllerRevision kinds: the revision's data
// is the strategic merge patch that restores its template; apply sends it,
// with the RolledBackTo mark.
func (h *history) undo(ctx context.Context, rev *revision, dryRun bool, apply func(context.Context, []byte) error) (types.PatchType, []byte, error) {
	var patch map[string]any
	if err := json.Unmarshal(rev.data, &patch); err != nil {
		return types.StrategicMergePatchType, nil, fmt.Errorf("the data of revision %d: %w", rev.number, err)
	}
	patch["metadata"] = map[string]any{"annotations": map[string]string{RolledBackTo: TemplateHash(rev.template)}}
	data, err := json.Marshal(patch)
	if err != nil || dryRun {
		return types.StrategicMergePatchType, data, err
	}
	return types.StrategicMergePatchType, data, apply(ctx, data)
}

func patchOptions() metav1.PatchOptions { return metav1.PatchOptions{FieldManager: fieldManager} }

func onDelete(kind, ns, name string) string {
	return fmt.Sprintf("%s %s/%s uses the OnDelete update strategy: its pods change only when someone deletes them, so there is no rollout to follow (use RollingUpdate)",
		strings.ToLower(kind), ns, name)
}

var errNoPause = errors.New("only a Deployment's rollout can be paused (kubectl rollout pause): use on_failure: rollback or notify")

// statefulSet keeps its revisions in ControllerRevisions; its pods carry
// the revision's name in the hash label.
type statefulSet struct{ history }

func (st *statefulSet) kind() string            { return config.KindStatefulSet }
func (st *statefulSet) replacesStuckPods() bool { return false }

func (st *statefulSet) look(ctx context.Context, fresh bool) (*snapshot, error) {
	set, err := st.cs.AppsV1().StatefulSets(st.ns).Get(ctx, st.name, metav1.GetOptions{})
	if err != nil {
		return nil, readErr(st.kind(), st.ns, st.name, err)
	}
	current := ""
	if set.Status.ObservedGeneration >= set.Generation {
		current = set.Status.UpdateRevision
	}
	s, err := st.snapshot(ctx, fresh, set.ObjectMeta, set.Spec.Selector, &set.Spec.Template,
		func(cr *appsv1.ControllerRevision) string { return cr.Name }, current)
	if err != nil {
		return nil, err
	}
	s.rollout.done, s.rollout.failed, s.rollout.message = statefulSetStatus(set)
	if set.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		s.unsupported = onDelete(st.kind(), st.ns, st.name)
	}
	return s, nil
}

func (st *statefulSet) undo(ctx context.Context, s *snapshot, rev *revision, dryRun bool) (types.PatchType, []byte, error) {
	return st.history.undo(ctx, rev, dryRun, func(ctx context.Context, data []byte) error {
		_, err := st.cs.AppsV1().StatefulSets(st.ns).Patch(ctx, st.name, types.StrategicMergePatchType, data, patchOptions())
		return err
	})
}

func (st *statefulSet) pause(context.Context) error { return errNoPause }

// daemonSet keeps its revisions in ControllerRevisions; its pods carry the
// revision's hash label.
type daemonSet struct{ history }

func (ds *daemonSet) kind() string            { return config.KindDaemonSet }
func (ds *daemonSet) replacesStuckPods() bool { return true }

func (ds *daemonSet) look(ctx context.Context, fresh bool) (*snapshot, error) {
	set, err := ds.cs.AppsV1().DaemonSets(ds.ns).Get(ctx, ds.name, metav1.GetOptions{})
	if err != nil {
		return nil, readErr(ds.kind(), ds.ns, ds.name, err)
	}
	s, err := ds.snapshot(ctx, fresh, set.ObjectMeta, set.Spec.Selector, &set.Spec.Template,
		func(cr *appsv1.ControllerRevision) string { return cr.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] }, "")
	if err != nil {
		return nil, err
	}
	s.rollout.done, s.rollout.failed, s.rollout.message = daemonSetStatus(set)
	if set.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
		s.unsupported = onDelete(ds.kind(), ds.ns, ds.name)
	}
	return s, nil
}

func (ds *daemonSet) undo(ctx context.Context, s *snapshot, rev *revision, dryRun bool) (types.PatchType, []byte, error) {
	return ds.history.undo(ctx, rev, dryRun, func(ctx context.Context, data []byte) error {
		_, err := ds.cs.AppsV1().DaemonSets(ds.ns).Patch(ctx, ds.name, types.StrategicMergePatchType, data, patchOptions())
		return err
	})
}

func (ds *daemonSet) pause(context.Context) error { return errNoPause }
