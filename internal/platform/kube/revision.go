package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Annotations and labels the Deployment controller and kubectl use.
const (
	fieldManager       = "deploywatch"
	revisionAnnotation = "deployment.kubernetes.io/revision"
	podTemplateHash    = appsv1.DefaultDeploymentUniqueLabelKey // "pod-template-hash"
	// RolledBackTo marks a workload deploywatch rolled back: its value is
	// the TemplateHash of the template it went back to, so that serve does
	// not take its own rollback for a new deploy.
	RolledBackTo = "deploywatch.dev/rolled-back-to"
)

// TemplateHash identifies a pod template, whatever hash label a
// controller added to its revision's copy of it: the same for a
// Deployment's template and its ReplicaSet's, or a StatefulSet's and its
// ControllerRevision's.
func TemplateHash(t *corev1.PodTemplateSpec) string {
	cp := t.DeepCopy()
	for _, l := range []string{podTemplateHash, appsv1.ControllerRevisionHashLabelKey, appsv1.DefaultDaemonSetUniqueLabelKey} {
		delete(cp.Labels, l)
	}
	b, _ := json.Marshal(cp)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// annotationsToSkip are the Deployment's own annotations that an undo keeps
// rather than copying them from the ReplicaSet, as kubectl does
// (polymorphichelpers/rollback.go).
var annotationsToSkip = map[string]bool{
	corev1.LastAppliedConfigAnnotation:          true,
	revisionAnnotation:                          true,
	"deployment.kubernetes.io/revision-history": true,
	"deployment.kubernetes.io/desired-replicas": true,
	"deployment.kubernetes.io/max-replicas":     true,
	"deprecated.deployment.rollback.to":         true,
}

// revisionOf reads a ReplicaSet's revision, or -1.
func revisionOf(rs *appsv1.ReplicaSet) int64 {
	v, err := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// ownedBy returns the ReplicaSets the Deployment controls, newest
// revision first.
func ownedBy(dep *appsv1.Deployment, all []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range all {
		if ref := metav1.GetControllerOf(rs); ref != nil && ref.UID == dep.UID {
			out = append(out, rs)
		}
	}
	sort.Slice(out, func(i, j int) bool { return revisionOf(out[i]) > revisionOf(out[j]) })
	return out
}

// equalIgnoreHash compares pod templates without the pod-template-hash
// label, which only the ReplicaSet's copy carries.
func equalIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, podTemplateHash)
	delete(b.Labels, podTemplateHash)
	if len(a.Labels) == 0 {
		a.Labels = nil
	}
	if len(b.Labels) == 0 {
		b.Labels = nil
	}
	return equality.Semantic.DeepEqual(a, b)
}

// newReplicaSet is the ReplicaSet whose template is the Deployment's, or
// nil when the controller has not created it yet.
func newReplicaSet(dep *appsv1.Deployment, owned []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	for _, rs := range owned {
		if equalIgnoreHash(&rs.Spec.Template, &dep.Spec.Template) {
			return rs
		}
	}
	return nil
}

// servingBefore picks the revision that was serving before the deploy:
// the rollback target. revs are newest first; current is the revision of
// the current template, if the controller made it. Before run deploys,
// that is the current revision. For a watch of a deploy already applied
// (even one that already finished), it is the newest revision that is not
// the new one.
func servingBefore(revs []*revision, current *revision, begun bool) *revision {
	if len(revs) == 0 {
		return nil
	}
	if !begun {
		if current != nil {
			return current
		}
		return revs[0]
	}
	for _, r := range revs {
		if r != current {
			return r
		}
	}
	return nil
}

// undoPatch is the JSON patch kubectl rollout undo sends: the target
// ReplicaSet's template (without its hash label) and its annotations,
// keeping the Deployment's own bookkeeping annotations (current).
func undoPatch(current map[string]string, rs *appsv1.ReplicaSet) ([]byte, error) {
	tmpl := rs.Spec.Template.DeepCopy()
	delete(tmpl.Labels, podTemplateHash)
	annotations := map[string]string{}
	for k := range annotationsToSkip {
		if v, ok := current[k]; ok {
			annotations[k] = v
		}
	}
	for k, v := range rs.Annotations {
		if !annotationsToSkip[k] {
			annotations[k] = v
		}
	}
	annotations[RolledBackTo] = TemplateHash(&rs.Spec.Template)
	patch := []map[string]any{
		{"op": "replace", "path": "/spec/template", "value": tmpl},
		{"op": "replace", "path": "/metadata/annotations", "value": annotations},
	}
	return json.Marshal(patch)
}

// rolloutStatus is kubectl rollout status's reading of a Deployment.
func rolloutStatus(dep *appsv1.Deployment) (done, failed bool, msg string) {
	if dep.Generation > dep.Status.ObservedGeneration {
		return false, false, "waiting for the Deployment's new spec to be observed"
	}
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return false, true, fmt.Sprintf("deployment %q exceeded its progress deadline: %s", dep.Name, c.Message)
		}
	}
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	st := dep.Status
	switch {
	case dep.Spec.Paused:
		return false, false, "the Deployment is paused"
	case st.UpdatedReplicas < want:
		return false, false, fmt.Sprintf("%d of %d new replicas updated", st.UpdatedReplicas, want)
	case st.Replicas > st.UpdatedReplicas:
		return false, false, fmt.Sprintf("%d old replicas pending termination", st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < st.UpdatedReplicas:
		return false, false, fmt.Sprintf("%d of %d updated replicas available", st.AvailableReplicas, st.UpdatedReplicas)
	}
	return true, false, fmt.Sprintf("deployment %q successfully rolled out: %d/%d replicas available", dep.Name, st.AvailableReplicas, want)
}

// controllerRevisions are the revisions of the StatefulSet or DaemonSet
// owner among all, newest first. Each one's data is the strategic merge
// patch {"spec":{"template":{...,"$patch":"replace"}}} that restores it.
func controllerRevisions(all []*appsv1.ControllerRevision, owner types.UID, podHash func(*appsv1.ControllerRevision) string) ([]*revision, error) {
	var out []*revision
	for _, cr := range all {
		if ref := metav1.GetControllerOf(cr); ref == nil || ref.UID != owner {
			continue
		}
		var data struct {
			Spec struct {
				Template corev1.PodTemplateSpec `json:"template"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(cr.Data.Raw, &data); err != nil {
			return nil, fmt.Errorf("controllerrevision %s: reading its template: %w", cr.Name, err)
		}
		out = append(out, &revision{uid: cr.UID, number: cr.Revision, podHash: podHash(cr), template: &data.Spec.Template, data: cr.Data.Raw,
			created: cr.CreationTimestamp.Time})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].number > out[j].number })
	return out, nil
}

// statefulSetStatus is kubectl rollout status's reading of a StatefulSet.
// A StatefulSet has no progress deadline: a stuck rollout shows in its
// pods' health.
func statefulSetStatus(set *appsv1.StatefulSet) (done, failed bool, msg string) {
	if set.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return false, false, "the OnDelete update strategy changes pods only when they are deleted"
	}
	if set.Status.ObservedGeneration == 0 || set.Generation > set.Status.ObservedGeneration {
		return false, false, "waiting for the StatefulSet's new spec to be observed"
	}
	want := int32(1)
	if set.Spec.Replicas != nil {
		want = *set.Spec.Replicas
	}
	st := set.Status
	if st.ReadyReplicas < want {
		return false, false, fmt.Sprintf("%d of %d pods ready", st.ReadyReplicas, want)
	}
	if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil && *ru.Partition > 0 {
		if st.UpdatedReplicas < want-*ru.Partition {
			return false, false, fmt.Sprintf("partitioned rollout: %d of %d new pods updated", st.UpdatedReplicas, want-*ru.Partition)
		}
		return true, false, fmt.Sprintf("partitioned rollout complete: %d new pods updated", st.UpdatedReplicas)
	}
	if st.UpdateRevision != st.CurrentRevision {
		return false, false, fmt.Sprintf("%d of %d pods at revision %s", st.UpdatedReplicas, want, st.UpdateRevision)
	}
	return true, false, fmt.Sprintf("statefulset %q rolled out: %d pods at revision %s", set.Name, st.CurrentReplicas, st.CurrentRevision)
}

// daemonSetStatus is kubectl rollout status's reading of a DaemonSet.
func daemonSetStatus(set *appsv1.DaemonSet) (done, failed bool, msg string) {
	if set.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
		return false, false, "the OnDelete update strategy changes pods only when they are deleted"
	}
	st := set.Status
	switch {
	case set.Generation > st.ObservedGeneration:
		return false, false, "waiting for the DaemonSet's new spec to be observed"
	case st.UpdatedNumberScheduled < st.DesiredNumberScheduled:
		return false, false, fmt.Sprintf("%d of %d new pods updated", st.UpdatedNumberScheduled, st.DesiredNumberScheduled)
	case st.NumberAvailable < st.DesiredNumberScheduled:
		return false, false, fmt.Sprintf("%d of %d updated pods available", st.NumberAvailable, st.DesiredNumberScheduled)
	}
	return true, false, fmt.Sprintf("daemonset %q rolled out: %d pods available", set.Name, st.NumberAvailable)
}

// gitOpsManager names the GitOps controller that manages the object, if
// any: an undo would be reverted by it within seconds.
func gitOpsManager(meta metav1.ObjectMeta) string {
	for _, where := range []struct {
		what string
		keys map[string]string
	}{{"label", meta.Labels}, {"annotation", meta.Annotations}} {
		for k := range where.keys {
			switch {
			case strings.HasPrefix(k, "argocd.argoproj.io/"):
				return "Argo CD (" + where.what + " " + k + ")"
			case strings.HasPrefix(k, "kustomize.toolkit.fluxcd.io/"), strings.HasPrefix(k, "helm.toolkit.fluxcd.io/"):
				return "Flux (" + where.what + " " + k + ")"
			}
		}
	}
	return ""
}

// podProblems judges the pods of the new version. baseRestarts holds the
// restart counts each container had when the deploy began (pods created
// since start at zero), so only restarts since the deploy count.
func podProblems(pods []*corev1.Pod, baseRestarts map[string]int32, restartLimit int, grace time.Duration, since, now time.Time) []string {
	var out []string
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if p.Status.Phase == corev1.PodFailed {
			out = append(out, fmt.Sprintf("pod %s failed: %s %s", p.Name, p.Status.Reason, p.Status.Message))
			continue
		}
		ready := false
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		for _, cs := range p.Status.ContainerStatuses {
			where := fmt.Sprintf("pod %s container %s", p.Name, cs.Name)
			restarts := cs.RestartCount - baseRestarts[p.Name+"/"+cs.Name]
			if w := cs.State.Waiting; w != nil {
				switch w.Reason {
				case "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
					"CreateContainerConfigError", "CreateContainerError", "RunContainerError":
					out = append(out, fmt.Sprintf("%s: %s (%d restarts since the deploy)", where, w.Reason, restarts))
					continue
				}
			}
			if t := cs.LastTerminationState.Terminated; t != nil && t.Reason == "OOMKilled" {
				out = append(out, fmt.Sprintf("%s: OOMKilled (%d restarts since the deploy)", where, restarts))
				continue
			}
			if int(restarts) > restartLimit {
				out = append(out, fmt.Sprintf("%s: %d restarts since the deploy (limit %d)", where, restarts, restartLimit))
			}
		}
		if !ready {
			from := p.CreationTimestamp.Time
			if from.Before(since) {
				from = since
			}
			if d := now.Sub(from); d > grace {
				out = append(out, fmt.Sprintf("pod %s not ready for %s (grace %s)", p.Name, d.Round(time.Second), grace))
			}
		}
	}
	return out
}
