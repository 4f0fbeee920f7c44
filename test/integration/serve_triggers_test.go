package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/store/sqlite"
)

// TestServeTriggers checks what starts a watch and what does not: a
// change that supersedes a watch under way, scaling, a workload whose
// rollout is under way when serve starts, and a change made while serve
// was down.
func TestServeTriggers(t *testing.T) {
	c := kubeCluster(t)
	bin := buildBinary(t)
	t.Parallel()
	ns := c.namespace(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "deploywatch.db")
	serveYAML := fmt.Sprintf(`kubernetes:
  namespaces: [%s]
  kubeconfig: %s
store:
  sqlite: %s
defaults:
  phases: {warmup: 1s, monitor: 20s, interval: 1s}
  on_failure: rollback
`, ns, c.kubeconfig, dbPath)
	optIn := func(d *appsv1.Deployment) { d.Labels[watchLabel] = "true" }
	c.deployment(t, ns, "api", "deploywatch.test/api:v1", optIn)
	// slow is mid-rollout when serve starts: its new pods take 15s.
	c.deployment(t, ns, "slow", "deploywatch.test/api:v1", optIn)
	c.setImageOf(t, ns, "slow", "deploywatch.test/api:slowready")
	srv := startServe(t, bin, dir, serveYAML)
	waitFor(t, "serve to be ready", time.Minute, srv.ready)
	st, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	history := func(workload string) []store.Deploy {
		page, err := st.ListDeploys(context.Background(), store.Query{Namespace: ns, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var out []store.Deploy
		for _, d := range page.Deploys {
			if d.Workload == workload {
				out = append(out, d)
			}
		}
		return out
	}
	verdicts := func(ds []store.Deploy) string {
		var parts []string
		for _, d := range ds {
			parts = append(parts, d.Verdict+" "+strings.TrimPrefix(d.Version, "deploywatch.test/api:"))
		}
		return strings.Join(parts, ", ")
	}

	t.Run("a workload whose rollout is under way at start is watched", func(t *testing.T) {
		waitFor(t, "slow's watch to end", 2*time.Minute, func() bool {
			h := history("slow")
			return len(h) == 1 && h[0].Verdict != store.InProgress
		})
		if got := verdicts(history("slow")); got != "stable slowready" {
			t.Fatalf("slow's history: %s", got)
		}
	})

	t.Run("a change during a watch supersedes it", func(t *testing.T) {
		c.setImageOf(t, ns, "api", "deploywatch.test/api:v2")
		waitFor(t, "the watch of v2", time.Minute, func() bool {
			h := history("api")
			return len(h) == 1 && h[0].Verdict == store.InProgress
		})
		c.setImageOf(t, ns, "api", "deploywatch.test/api:crashloop")
		waitFor(t, "the watch of the crash loop to end", 2*time.Minute, func() bool {
			h := history("api")
			return len(h) == 2 && h[0].Verdict != store.InProgress
		})
		h := history("api")
		if got := verdicts(h); got != "failed crashloop, inconclusive v2" {
			t.Fatalf("api's history: %s", got)
		}
		if !strings.Contains(h[1].Reason, "superseded by generation 3") || h[1].RolledBack {
			t.Errorf("the superseded watch: %q, rolled back %v", h[1].Reason, h[1].RolledBack)
		}
		// Judged against v1, the last version known good: the rollback
		// returns to v1, not to v2.
		if img := c.image(t, ns, "api"); img != "deploywatch.test/api:v1" {
			t.Fatalf("rolled back to %s, want v1", img)
		}
	})

	t.Run("scaling starts nothing", func(t *testing.T) {
		before := len(history("api"))
		d := c.get(t, ns, "api")
		replicas := *d.Spec.Replicas + 1
		d.Spec.Replicas = &replicas
		if _, err := c.cs.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.waitRolledOut(t, ns, "api")
		// A template change after the scaling is the next deploy: nothing
		// was recorded for the scaling before it.
		c.setImageOf(t, ns, "api", "deploywatch.test/api:v4")
		waitFor(t, "the watch of v4", time.Minute, func() bool { return len(history("api")) > before })
		if h := history("api"); len(h) != before+1 || !strings.HasSuffix(h[0].Version, ":v4") {
			t.Fatalf("after scaling and a change: %s", verdicts(h))
		}
		waitFor(t, "v4 to end", 2*time.Minute, func() bool { return history("api")[0].Verdict != store.InProgress })
	})

	t.Run("a change made while serve was down is watched when it comes back", func(t *testing.T) {
		_ = srv.cmd.Process.Signal(syscall.SIGTERM)
		if code := srv.wait(t, time.Minute); code != 0 {
			t.Fatalf("serve exited %d\n%s", code, srv.out)
		}
		before := len(history("api"))
		c.setImageOf(t, ns, "api", "deploywatch.test/api:crashloop")
		changed := time.Now()
		waitFor(t, "the crash loop to show", 30*time.Second, func() bool {
			pods, _ := c.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=api"})
			for _, p := range pods.Items {
				for _, cs := range p.Status.ContainerStatuses {
					if cs.RestartCount > 0 {
						return true
					}
				}
			}
			return false
		})
		srv2 := startServe(t, bin, dir, serveYAML)
		waitFor(t, "the missed deploy to be rolled back", 2*time.Minute, func() bool {
			h := history("api")
			return len(h) == before+1 && h[0].Verdict != store.InProgress
		})
		d := history("api")[0]
		if d.Verdict != store.Failed || !d.RollbackOK || c.image(t, ns, "api") != "deploywatch.test/api:v4" {
			t.Fatalf("the missed deploy: %s (%s), rollback ok %v, image %s", d.Verdict, d.Reason, d.RollbackOK, c.image(t, ns, "api"))
		}
		if d.StartedAt.After(changed.Add(2 * time.Second)) {
			t.Errorf("started at %s: want the change's time (%s), not serve's return", d.StartedAt, changed)
		}
		if !srv2.leader() {
			t.Error("the restarted replica does not say it leads")
		}
	})
}
