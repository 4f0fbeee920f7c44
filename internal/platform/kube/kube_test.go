package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/deploywatch/deploywatch/internal/config"
)

// TestWatchesOnlyTheWorkloadsObjects: the informers list and watch the
// pods and revisions the workload's selector matches, not the namespace
// (which may hold thousands of other pods). The behaviour itself is tested
// on a real control plane in test/integration; this checks the requests.
func TestWatchesOnlyTheWorkloadsObjects(t *testing.T) {
	d := dep("api:v1")
	d.Namespace = "shop"
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}
	cs := fake.NewClientset(d)
	tgt, err := newTarget(context.Background(), cs, config.KubernetesTarget{Namespace: "shop", Deployment: "api", NotReadyGrace: config.Duration(time.Minute)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	seen := map[string]string{}
	for _, a := range cs.Actions() {
		if l, ok := a.(k8stesting.ListAction); ok {
			seen[a.GetResource().Resource] = l.GetListRestrictions().Labels.String()
		}
	}
	for _, res := range []string{"pods", "replicasets"} {
		if got, ok := seen[res]; !ok || got != "app=api" {
			t.Errorf("%s listed with selector %q (listed: %v), want app=api", res, got, ok)
		}
	}
}

func TestAMissingWorkloadIsNamed(t *testing.T) {
	cs := fake.NewClientset()
	for _, kc := range []config.KubernetesTarget{
		{Namespace: "shop", Deployment: "api"},
		{Namespace: "shop", StatefulSet: "db"},
		{Namespace: "shop", DaemonSet: "agent"},
	} {
		kind, name := kc.Workload()
		_, err := newTarget(context.Background(), cs, kc, nil)
		if want := "shop/" + name + " not found"; err == nil || err.Error() != strings.ToLower(kind)+" "+want {
			t.Errorf("%s: %v, want %q", kind, err, strings.ToLower(kind)+" "+want)
		}
	}
}
