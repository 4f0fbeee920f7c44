package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/deploywatch/deploywatch/internal/watch"
)

// podLog is a log file in the CRI format the kubelet reads
// ("TIME STREAM F line"), which kwok serves as pods' logs.
type podLog string

// write appends a line logged at a time.
func (l podLog) write(t *testing.T, at time.Time, line string) {
	t.Helper()
	f, err := os.OpenFile(string(l), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s stdout F %s\n", at.UTC().Format(time.RFC3339Nano), line); err != nil {
		t.Error(err)
	}
}

// podLogs makes kwok, playing the kubelet, serve one log file as the logs
// of every pod in ns, through a ClusterLogs object.
func (c *cluster) podLogs(t *testing.T, ns string) podLog {
	t.Helper()
	path := podLog(filepath.Join(t.TempDir(), "pod.log"))
	path.write(t, time.Now().Add(-time.Minute), "GET /api/v1/status 200")
	dc, err := dynamic.NewForConfig(c.rc)
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "ClusterLogs",
		"metadata":   map[string]any{"name": ns},
		"spec": map[string]any{
			"selector": map[string]any{"matchNamespaces": []any{ns}},
			"logs":     []any{map[string]any{"logsFile": string(path)}},
		},
	}}
	res := dc.Resource(schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "clusterlogs"})
	if _, err := res.Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = res.Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	return path
}

func findVerifyItem(r *watch.Report, name string) *watch.VerifyItem {
	for i := range r.Verify {
		if r.Verify[i].Name == name {
			return &r.Verify[i]
		}
	}
	return nil
}

// TestKubernetesLogScan reads the new pods' logs through the API server
// (pods/log, served by kwok as the kubelet) for the checklist's logs item.
func TestKubernetesLogScan(t *testing.T) {
	c := kubeCluster(t)
	verify := "verify:\n  logs:\n    window: 2m\n"
	for _, tc := range []struct {
		name     string
		after    string // the line the pods log after the deploy
		wantCode int
		outcome  watch.Outcome
		evidence string
	}{
		{"error lines after the deploy fail it", "ERROR connecting to the database: connection refused", 1, watch.OutcomeFailed, "ERROR connecting to the database"},
		{"clean logs pass", "GET /api/v1/status 200", 0, watch.OutcomePassed, "no error lines among"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := c.namespace(t)
			c.deployment(t, ns, "api", "deploywatch.test/api:v1", nil)
			logs := c.podLogs(t, ns)
			// The new version logs as soon as its ReplicaSet exists: after
			// the deploy started, before the checklist runs (after the
			// rollout and the warm-up).
			done := make(chan struct{})
			go func() {
				defer close(done)
				deadline := time.Now().Add(time.Minute)
				for time.Now().Before(deadline) {
					d, err := c.cs.AppsV1().Deployments(ns).Get(context.Background(), "api", metav1.GetOptions{})
					if err == nil && d.Annotations["deployment.kubernetes.io/revision"] == "2" {
						for range 5 {
							logs.write(t, time.Now(), tc.after)
						}
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()
			cfg := kubeConfigFile(t, ns, "api", "", verify)
			code, out, r := c.runSetImage(t, ns, cfg, "v2")
			<-done
			item := findVerifyItem(r, "logs")
			if code != tc.wantCode || item == nil || item.Outcome != tc.outcome || !strings.Contains(item.Evidence, tc.evidence) {
				t.Fatalf("exit %d, logs item %+v\n%s", code, item, out)
			}
			if tc.outcome == watch.OutcomeFailed && (!strings.Contains(item.Evidence, "api-") || r.Rollback == nil || !r.Rollback.OK) {
				t.Errorf("evidence %q should name the pod; rollback %+v", item.Evidence, r.Rollback)
			}
		})
	}
}
