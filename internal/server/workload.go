package server

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/platform/kube"
)

// The labels and annotations by which a workload talks to serve.
const (
	// WatchLabel opts a workload in: "true". The informers filter on it on
	// the server side.
	WatchLabel = "deploywatch.dev/watch"
	// ConfigAnnotation names a ConfigMap in the workload's namespace whose
	// deploywatch.yaml key merges over serve.yaml's defaults.
	ConfigAnnotation = "deploywatch.dev/config"
	// ConfigKey is the ConfigMap's key.
	ConfigKey = "deploywatch.yaml"
	// VersionAnnotation names the version deployed; default the images.
	VersionAnnotation = "deploywatch.dev/version"
	// CommitTimeAnnotation says when the deployed commit was made (RFC 3339
	// or Unix seconds), for the lead time of the DORA figures.
	CommitTimeAnnotation = "deploywatch.dev/commit-time"
)

// workload is a watched Deployment, StatefulSet or DaemonSet as the
// controller sees it.
type workload struct {
	kind       string
	meta       metav1.ObjectMeta
	template   *corev1.PodTemplateSpec
	generation int64
	// rollingOut is set while the controller has not finished the
	// current template's rollout.
	rollingOut bool
}

// workloadOf reads an informer's object.
func workloadOf(obj any) (workload, bool) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		want := int32(1)
		if o.Spec.Replicas != nil {
			want = *o.Spec.Replicas
		}
		st := o.Status
		return workload{kind: config.KindDeployment, meta: o.ObjectMeta, template: &o.Spec.Template, generation: o.Generation,
			rollingOut: st.ObservedGeneration < o.Generation || st.UpdatedReplicas < want || st.Replicas > st.UpdatedReplicas || st.AvailableReplicas < st.UpdatedReplicas}, true
	case *appsv1.StatefulSet:
		st := o.Status
		return workload{kind: config.KindStatefulSet, meta: o.ObjectMeta, template: &o.Spec.Template, generation: o.Generation,
			rollingOut: st.ObservedGeneration < o.Generation || (st.UpdateRevision != "" && st.CurrentRevision != st.UpdateRevision)}, true
	case *appsv1.DaemonSet:
		st := o.Status
		return workload{kind: config.KindDaemonSet, meta: o.ObjectMeta, template: &o.Spec.Template, generation: o.Generation,
			rollingOut: st.ObservedGeneration < o.Generation || st.UpdatedNumberScheduled < st.DesiredNumberScheduled || st.NumberAvailable < st.DesiredNumberScheduled}, true
	}
	return workload{}, false
}

// key names the workload: namespace/Kind/name.
func (w workload) key() string { return w.meta.Namespace + "/" + w.kind + "/" + w.meta.Name }

// String is "deployment shop/api".
func (w workload) String() string {
	return strings.ToLower(w.kind) + " " + w.meta.Namespace + "/" + w.meta.Name
}

// templateHash identifies the current pod template.
func (w workload) templateHash() string { return kube.TemplateHash(w.template) }

// ownRollback reports whether the current template is the one
// deploywatch rolled the workload back to.
func (w workload) ownRollback() bool {
	return w.meta.Annotations[kube.RolledBackTo] != "" && w.meta.Annotations[kube.RolledBackTo] == w.templateHash()
}

// version is the deploywatch.dev/version annotation (on the workload, or
// on its pod template), else the images: "api:v2", or
// "api=shop/api:v2,proxy=envoy:1.30" for several containers.
func (w workload) version() string {
	for _, ann := range []map[string]string{w.meta.Annotations, w.template.Annotations} {
		if v := ann[VersionAnnotation]; v != "" {
			return v
		}
	}
	cs := w.template.Spec.Containers
	if len(cs) == 1 {
		return cs[0].Image
	}
	parts := make([]string, 0, len(cs))
	for _, c := range cs {
		parts = append(parts, c.Name+"="+c.Image)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// commitTime is the deploywatch.dev/commit-time annotation (on the
// workload, or on its pod template); nil when absent.
func (w workload) commitTime() (*time.Time, error) {
	for _, ann := range []map[string]string{w.meta.Annotations, w.template.Annotations} {
		v := strings.TrimSpace(ann[CommitTimeAnnotation])
		if v == "" {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return &t, nil
		}
		if sec, err := strconv.ParseInt(v, 10, 64); err == nil && sec > 0 {
			t := time.Unix(sec, 0).UTC()
			return &t, nil
		}
		return nil, fmt.Errorf("annotation %s=%q: want an RFC 3339 time or Unix seconds", CommitTimeAnnotation, v)
	}
	return nil, nil
}

// triggeredBy names who changed the template last: the field manager of
// the newest update to the spec (kubectl, argocd, helm, ...).
func (w workload) triggeredBy() string {
	var who string
	var at metav1.Time
	for _, mf := range w.meta.ManagedFields {
		if mf.Time != nil && !mf.Time.Before(&at) && mf.Subresource == "" && mf.Manager != "deploywatch" {
			who, at = mf.Manager, *mf.Time
		}
	}
	return who
}

// templateChangedAt is when the pod template was last written, as the
// API server's field management records it: the newest time of a manager
// whose fields include the template. Zero when nothing says.
func (w workload) templateChangedAt() time.Time {
	var at time.Time
	for _, mf := range w.meta.ManagedFields {
		if mf.Time == nil || mf.Subresource != "" || mf.FieldsV1 == nil || !bytes.Contains(mf.FieldsV1.Raw, []byte(`"f:template"`)) {
			continue
		}
		if mf.Time.After(at) {
			at = mf.Time.Time
		}
	}
	return at
}

// deployKey identifies one change of the workload, so that however many
// replicas see it, it is recorded once: the generation counts spec changes.
func (w workload) deployKey() string {
	return fmt.Sprintf("%s@%d", w.key(), w.generation)
}
