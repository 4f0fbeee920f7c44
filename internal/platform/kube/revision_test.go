package kube

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

func dep(image string) *appsv1.Deployment {
	replicas := int32(3)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api", UID: "dep-uid", Generation: 2,
			Annotations: map[string]string{revisionAnnotation: "2", corev1.LastAppliedConfigAnnotation: "{...}"}},
		Spec:   appsv1.DeploymentSpec{Replicas: &replicas, Template: template(image, "")},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3},
	}
}

func template(image, hash string) corev1.PodTemplateSpec {
	labels := map[string]string{"app": "api"}
	if hash != "" {
		labels[podTemplateHash] = hash
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: image}}},
	}
}

func rs(rev, image, hash string) *appsv1.ReplicaSet {
	ctrl := true
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: "api-" + hash, UID: types.UID("rs-" + hash),
			Annotations:     map[string]string{revisionAnnotation: rev, "custom": "from-rs-" + rev},
			OwnerReferences: []metav1.OwnerReference{{UID: "dep-uid", Controller: &ctrl}},
		},
		Spec: appsv1.ReplicaSetSpec{Template: template(image, hash)},
	}
}

func TestServingBefore(t *testing.T) {
	v1, v2 := rs("1", "api:v1", "aaa"), rs("2", "api:v2", "bbb")
	stranger := rs("7", "other:v1", "zzz")
	stranger.OwnerReferences[0].UID = "someone-else"
	cases := []struct {
		name    string
		dep     *appsv1.Deployment
		rss     []*appsv1.ReplicaSet
		started bool
		want    string
	}{
		{"run: the ReplicaSet of the current template", dep("api:v1"), []*appsv1.ReplicaSet{v1, stranger}, false, "1"},
		{"watch after apply, new ReplicaSet created", dep("api:v2"), []*appsv1.ReplicaSet{v1, v2}, true, "1"},
		{"watch after apply, before the controller saw it", dep("api:v2"), []*appsv1.ReplicaSet{v1}, true, "1"},
		{"watch after the rollout finished", dep("api:v2"), []*appsv1.ReplicaSet{v2, v1}, true, "1"},
		{"first deploy ever has nothing before it", dep("api:v1"), []*appsv1.ReplicaSet{v1}, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := deploymentSnapshot(c.dep, labels.Everything(), c.rss)
			got := servingBefore(s.revisions, s.current, c.started)
			switch {
			case c.want == "" && got != nil:
				t.Fatalf("pinned revision %d, want none", got.number)
			case c.want != "" && (got == nil || strconv.FormatInt(got.number, 10) != c.want):
				t.Fatalf("pinned %+v, want revision %s", got, c.want)
			}
		})
	}
}

func TestUndoPatchIsKubectls(t *testing.T) {
	d := dep("api:v2")
	d.Annotations["deployment.kubernetes.io/revision-history"] = "1"
	patch, err := undoPatch(d.Annotations, rs("1", "api:v1", "aaa"))
	if err != nil {
		t.Fatal(err)
	}
	var ops []struct {
		Op, Path string
		Value    json.RawMessage
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 || ops[0].Path != "/spec/template" || ops[1].Path != "/metadata/annotations" || ops[0].Op != "replace" {
		t.Fatalf("ops %+v", ops)
	}
	var tmpl corev1.PodTemplateSpec
	_ = json.Unmarshal(ops[0].Value, &tmpl)
	if _, ok := tmpl.Labels[podTemplateHash]; ok || tmpl.Spec.Containers[0].Image != "api:v1" {
		t.Errorf("template %+v: want revision 1's, without the hash label", tmpl)
	}
	var ann map[string]string
	_ = json.Unmarshal(ops[1].Value, &ann)
	want := map[string]string{
		revisionAnnotation:                          "2",     // the Deployment's own, kept
		corev1.LastAppliedConfigAnnotation:          "{...}", // kept
		"deployment.kubernetes.io/revision-history": "1",     // kept
		"custom":     "from-rs-1",
		RolledBackTo: TemplateHash(&rs("1", "api:v1", "aaa").Spec.Template), // deploywatch's mark: its own rollback, to revision 1's template
	}
	if len(ann) != len(want) {
		t.Fatalf("annotations %v, want %v", ann, want)
	}
	for k, v := range want {
		if ann[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, ann[k], v)
		}
	}
}

func TestEqualIgnoreHash(t *testing.T) {
	a, b := template("api:v1", "aaa"), template("api:v1", "")
	if !equalIgnoreHash(&a, &b) {
		t.Error("templates differing only by the hash label must be equal")
	}
	c := template("api:v2", "")
	if equalIgnoreHash(&a, &c) {
		t.Error("different images compared equal")
	}
}

func TestRolloutStatus(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*appsv1.Deployment)
		done   bool
		failed bool
		msg    string
	}{
		{"complete", func(*appsv1.Deployment) {}, true, false, "successfully rolled out"},
		{"spec not observed", func(d *appsv1.Deployment) { d.Generation = 3 }, false, false, "to be observed"},
		{"updating", func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 1 }, false, false, "1 of 3 new replicas updated"},
		{"old pods terminating", func(d *appsv1.Deployment) { d.Status.Replicas = 4 }, false, false, "1 old replicas pending termination"},
		{"not yet available", func(d *appsv1.Deployment) { d.Status.AvailableReplicas = 2 }, false, false, "2 of 3 updated replicas available"},
		{"deadline exceeded", func(d *appsv1.Deployment) {
			d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Reason: "ProgressDeadlineExceeded", Message: "ReplicaSet api-x has timed out progressing."}}
		}, false, true, "exceeded its progress deadline"},
		{"paused", func(d *appsv1.Deployment) { d.Spec.Paused = true }, false, false, "paused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := dep("api:v1")
			c.mutate(d)
			done, failed, msg := rolloutStatus(d)
			if done != c.done || failed != c.failed || !strings.Contains(msg, c.msg) {
				t.Fatalf("got %v %v %q", done, failed, msg)
			}
		})
	}
}

func TestGitOpsManager(t *testing.T) {
	cases := []struct {
		labels, annotations map[string]string
		want                string
	}{
		{nil, nil, ""},
		{map[string]string{"argocd.argoproj.io/instance": "shop"}, nil, "Argo CD"},
		{nil, map[string]string{"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:ns/api"}, "Argo CD"},
		{map[string]string{"kustomize.toolkit.fluxcd.io/name": "apps"}, nil, "Flux"},
		{map[string]string{"helm.toolkit.fluxcd.io/name": "api"}, nil, "Flux"},
		{map[string]string{"app.kubernetes.io/instance": "api"}, nil, ""},
	}
	for _, c := range cases {
		got := gitOpsManager(metav1.ObjectMeta{Labels: c.labels, Annotations: c.annotations})
		if !strings.HasPrefix(got, c.want) || (c.want == "" && got != "") {
			t.Errorf("%v %v: got %q, want %q", c.labels, c.annotations, got, c.want)
		}
	}
}

func TestPodProblems(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 10, 0, 0, time.UTC)
	since := now.Add(-5 * time.Minute)
	pod := func(name string, created time.Time, ready bool, cs corev1.ContainerStatus) *corev1.Pod {
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		cs.Name = "api"
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}},
				ContainerStatuses: []corev1.ContainerStatus{cs}},
		}
	}
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	cases := []struct {
		name string
		pod  *corev1.Pod
		base map[string]int32
		want string
	}{
		{"healthy", pod("p", now.Add(-time.Minute), true, corev1.ContainerStatus{State: running}), nil, ""},
		{"crash loop", pod("p", now, false, corev1.ContainerStatus{RestartCount: 2, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}), nil, "pod p container api: CrashLoopBackOff (2 restarts"},
		{"image pull", pod("p", now, false, corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull"}}}), nil, "ErrImagePull"},
		{"OOM killed", pod("p", now, true, corev1.ContainerStatus{RestartCount: 1, State: running, LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled"}}}), nil, "OOMKilled"},
		{"restarts above the limit", pod("p", now.Add(-time.Minute), true, corev1.ContainerStatus{RestartCount: 3, State: running}), nil, "3 restarts since the deploy (limit 2)"},
		{"restarts at the limit pass", pod("p", now.Add(-time.Minute), true, corev1.ContainerStatus{RestartCount: 2, State: running}), nil, ""},
		{"restarts before the deploy do not count", pod("p", now.Add(-time.Hour), true, corev1.ContainerStatus{RestartCount: 7, State: running}), map[string]int32{"p/api": 5}, ""},
		{"not ready within the grace", pod("p", now.Add(-30*time.Second), false, corev1.ContainerStatus{State: running}), nil, ""},
		{"not ready past the grace", pod("p", now.Add(-3*time.Minute), false, corev1.ContainerStatus{State: running}), nil, "pod p not ready for 3m0s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := strings.Join(podProblems([]*corev1.Pod{c.pod}, c.base, 2, 2*time.Minute, since, now), "; ")
			if c.want == "" && got != "" || !strings.Contains(got, c.want) {
				t.Fatalf("problems %q, want %q", got, c.want)
			}
		})
	}
}

func TestStatefulSetStatus(t *testing.T) {
	two := int32(2)
	one := int32(1)
	set := func(mutate func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
		s := &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Generation: 3},
			Spec:       appsv1.StatefulSetSpec{Replicas: &two, UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}},
			Status: appsv1.StatefulSetStatus{ObservedGeneration: 3, ReadyReplicas: 2, UpdatedReplicas: 2, CurrentReplicas: 2,
				CurrentRevision: "db-bbb", UpdateRevision: "db-bbb"},
		}
		if mutate != nil {
			mutate(s)
		}
		return s
	}
	for _, tc := range []struct {
		name string
		set  *appsv1.StatefulSet
		done bool
		msg  string
	}{
		{"rolled out", set(nil), true, "rolled out"},
		{"spec not observed", set(func(s *appsv1.StatefulSet) { s.Status.ObservedGeneration = 2 }), false, "observed"},
		{"a pod not ready", set(func(s *appsv1.StatefulSet) { s.Status.ReadyReplicas = 1 }), false, "1 of 2 pods ready"},
		{"pods on the old revision", set(func(s *appsv1.StatefulSet) { s.Status.CurrentRevision, s.Status.UpdatedReplicas = "db-aaa", 1 }), false, "1 of 2 pods at revision db-bbb"},
		{"partition reached", set(func(s *appsv1.StatefulSet) {
			s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: &one}
			s.Status.CurrentRevision, s.Status.UpdatedReplicas = "db-aaa", 1
		}), true, "partitioned rollout complete"},
		{"OnDelete never rolls out by itself", set(func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType }), false, "OnDelete"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done, failed, msg := statefulSetStatus(tc.set)
			if done != tc.done || failed || !strings.Contains(msg, tc.msg) {
				t.Errorf("done %v failed %v %q, want done %v and %q", done, failed, msg, tc.done, tc.msg)
			}
		})
	}
}

func TestDaemonSetStatus(t *testing.T) {
	set := func(gen, observed int64, desired, updated, available int32) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: "agent", Generation: gen},
			Status: appsv1.DaemonSetStatus{ObservedGeneration: observed, DesiredNumberScheduled: desired,
				UpdatedNumberScheduled: updated, NumberAvailable: available},
		}
	}
	for _, tc := range []struct {
		name string
		set  *appsv1.DaemonSet
		done bool
		msg  string
	}{
		{"rolled out", set(2, 2, 3, 3, 3), true, "rolled out"},
		{"spec not observed", set(2, 1, 3, 3, 3), false, "observed"},
		{"nodes left to update", set(2, 2, 3, 1, 3), false, "1 of 3 new pods updated"},
		{"updated but not available", set(2, 2, 3, 3, 2), false, "2 of 3 updated pods available"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done, _, msg := daemonSetStatus(tc.set)
			if done != tc.done || !strings.Contains(msg, tc.msg) {
				t.Errorf("done %v %q, want done %v and %q", done, msg, tc.done, tc.msg)
			}
		})
	}
}

// controllerRevision is what the StatefulSet and DaemonSet controllers
// store: the patch that restores the template, owned by the workload.
func controllerRevision(t *testing.T, owner types.UID, name, hash string, number int64, image string) *appsv1.ControllerRevision {
	t.Helper()
	tmpl := template(image, "")
	data, err := json.Marshal(map[string]any{"spec": map[string]any{"template": tmpl}})
	if err != nil {
		t.Fatal(err)
	}
	// The controllers write "$patch": "replace" into the template.
	data = []byte(strings.Replace(string(data), `"template":{`, `"template":{"$patch":"replace",`, 1))
	ctrl := true
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("cr-" + name), Labels: map[string]string{appsv1.ControllerRevisionHashLabelKey: hash},
			OwnerReferences: []metav1.OwnerReference{{UID: owner, Controller: &ctrl}}},
		Revision: number,
	}
	cr.Data.Raw = data
	return cr
}

func TestControllerRevisionsPinAndRestore(t *testing.T) {
	v1 := controllerRevision(t, "set-uid", "db-aaa", "aaa", 1, "api:v1")
	v2 := controllerRevision(t, "set-uid", "db-bbb", "bbb", 2, "api:v2")
	stranger := controllerRevision(t, "other-uid", "x-zzz", "zzz", 9, "other:v1")
	revs, err := controllerRevisions([]*appsv1.ControllerRevision{v1, stranger, v2}, "set-uid",
		func(cr *appsv1.ControllerRevision) string { return cr.Name })
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 2 || revs[0].number != 2 || revs[1].number != 1 || revs[1].podHash != "db-aaa" {
		t.Fatalf("revisions %+v, want 2 then 1, the stranger left out", revs)
	}
	if img := revs[1].template.Spec.Containers[0].Image; img != "api:v1" {
		t.Errorf("template of revision 1 runs %s", img)
	}
	if string(revs[1].data) != string(v1.Data.Raw) {
		t.Errorf("the undo patch must be the revision's data as stored")
	}
	cur := template("api:v2", "")
	h := &history{}
	s := &snapshot{template: &cur}
	h.withCurrent(s, revs, "")
	if s.current != revs[0] {
		t.Fatalf("current %+v, want revision 2 (its template is the workload's)", s.current)
	}
	if got := servingBefore(s.revisions, s.current, true); got != revs[1] {
		t.Errorf("pinned %+v, want revision 1", got)
	}
	if _, err := controllerRevisions([]*appsv1.ControllerRevision{{ObjectMeta: v1.ObjectMeta, Data: runtime.RawExtension{Raw: []byte("{")}}}, "set-uid",
		func(cr *appsv1.ControllerRevision) string { return cr.Name }); err == nil || !strings.Contains(err.Error(), "controllerrevision db-aaa") {
		t.Errorf("corrupt data: %v, want an error naming the revision", err)
	}
}
