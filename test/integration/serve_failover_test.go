package integration

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/store/postgres"
	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/testsvc"
)

// TestServeFailover runs serve replicas on one PostgreSQL with leader
// election: the leader killed during a bad release's monitor is replaced
// within the lease and the release is rolled back once; killed during a
// good release, the next leader ends it stable; stopped with SIGTERM, it
// hands the lease over at once.
func TestServeFailover(t *testing.T) {
	c := kubeCluster(t)
	bin := buildBinary(t)
	t.Parallel()
	pg := testenv.StartPostgres(t)
	dsn := pg.NewDatabase(t)
	ns := c.namespace(t)
	leaseNS := c.namespace(t)
	e := newEnv(t, healthy, 50, 20*time.Second)
	c.deployment(t, ns, "api", "deploywatch.test/api:v1", func(d *appsv1.Deployment) { d.Labels[watchLabel] = "true" })
	dir := t.TempDir()
	const lease = 10 * time.Second
	serveYAML := fmt.Sprintf(`kubernetes:
  namespaces: [%s]
  kubeconfig: %s
store:
  postgres_dsn_env: DEPLOYWATCH_DSN
leader_election:
  enabled: true
  namespace: %s
  lease_duration: 10s
  renew_deadline: 8s
  retry_period: 1s
defaults:
  metrics:
    prometheus: {url: %s}
    selector: 'job="api"'
  baseline: {window: 1m}
  phases: {warmup: 3s, monitor: 20s, interval: 2s}
  on_failure: rollback
`, ns, c.kubeconfig, leaseNS, e.prom.URL)
	replica := func(id string) *serveProc {
		return startServe(t, bin, dir, serveYAML, "DEPLOYWATCH_DSN="+dsn, "DEPLOYWATCH_IDENTITY="+id)
	}
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	replicas := []*serveProc{replica("a"), replica("b")}
	leaderOf := func(ps ...*serveProc) *serveProc {
		var l *serveProc
		waitFor(t, "one leader", time.Minute, func() bool {
			n := 0
			for _, p := range ps {
				if p.leader() {
					l, n = p, n+1
				}
			}
			return n == 1
		})
		return l
	}
	// measuring waits for a watch of version to be in its monitor phase.
	measuring := func(version string) store.Deploy {
		var d store.Deploy
		waitFor(t, "the watch of "+version+" to measure", 2*time.Minute, func() bool {
			page, err := st.ListDeploys(context.Background(), store.Query{Namespace: ns})
			if err != nil || len(page.Deploys) == 0 || page.Deploys[0].Version != version {
				return false
			}
			d = page.Deploys[0]
			events, err := st.Events(context.Background(), d.ID, 0)
			if err != nil {
				return false
			}
			for _, ev := range events {
				if ev.Kind == "measured" {
					return true
				}
			}
			return false
		})
		return d
	}
	ended := func(id string) store.Deploy {
		var d store.Deploy
		waitFor(t, "the watch to end", 3*time.Minute, func() bool {
			var err error
			d, err = st.Deploy(context.Background(), id)
			return err == nil && d.Verdict != store.InProgress
		})
		return d
	}
	revision := func() string { return c.get(t, ns, "api").Annotations["deployment.kubernetes.io/revision"] }

	t.Run("the leader killed in a bad release's monitor: the next one rolls back once", func(t *testing.T) {
		leader := leaderOf(replicas...)
		waitFor(t, "the leader to be ready", time.Minute, leader.ready)
		e.svc.Stage(testsvc.Profile{Version: "v2", ErrorRatio: 0.05, Latency: 1})
		if _, err := e.svc.Deploy(); err != nil {
			t.Fatal(err)
		}
		c.setImageOf(t, ns, "api", "deploywatch.test/api:v2")
		d := measuring("deploywatch.test/api:v2")
		killedAt := time.Now()
		leader.kill(t)
		var next *serveProc
		for _, r := range replicas {
			if r != leader {
				next = r
			}
		}
		waitFor(t, "the other replica to lead", 2*lease+5*time.Second, next.leader)
		t.Logf("the other replica led %s after the kill", time.Since(killedAt).Round(100*time.Millisecond))
		got := ended(d.ID)
		if got.Verdict != store.Failed || !got.RolledBack || !got.RollbackOK {
			t.Fatalf("the resumed watch: %s (%s), rolled back %v ok %v", got.Verdict, got.Reason, got.RolledBack, got.RollbackOK)
		}
		waitFor(t, "revision 3", 30*time.Second, func() bool { return revision() == "3" })
		if img := c.image(t, ns, "api"); img != "deploywatch.test/api:v1" {
			t.Fatalf("api runs %s", img)
		}
		events, _ := st.Events(context.Background(), d.ID, 0)
		kinds := map[string]int{}
		for _, ev := range events {
			kinds[ev.Kind]++
		}
		if kinds["resumed"] != 1 || kinds["rollback_started"] != 1 || kinds["verdict"] != 1 {
			t.Errorf("events of the watch: %v; want it resumed once, one rollback, one verdict", kinds)
		}
		replicas = []*serveProc{next, replica("c")}
	})

	t.Run("the leader killed in a good release's monitor: the next one ends it stable", func(t *testing.T) {
		leader := leaderOf(replicas...)
		e.svc.Stage(testsvc.Profile{Version: "v3", ErrorRatio: 0.001, Latency: 1})
		if _, err := e.svc.Deploy(); err != nil {
			t.Fatal(err)
		}
		before := revision()
		c.setImageOf(t, ns, "api", "deploywatch.test/api:v3")
		waitFor(t, "a new revision", 30*time.Second, func() bool { return revision() != before })
		rev := revision()
		d := measuring("deploywatch.test/api:v3")
		leader.kill(t)
		got := ended(d.ID)
		if got.Verdict != store.Stable || got.RolledBack {
			t.Fatalf("the resumed watch: %s (%s), rolled back %v", got.Verdict, got.Reason, got.RolledBack)
		}
		if revision() != rev || c.image(t, ns, "api") != "deploywatch.test/api:v3" {
			t.Fatalf("revision %s (want %s), image %s", revision(), rev, c.image(t, ns, "api"))
		}
		var next *serveProc
		for _, r := range replicas {
			if r != leader {
				next = r
			}
		}
		replicas = []*serveProc{next, replica("d")}
	})

	t.Run("the store stopped mid-watch: the watch goes on and its record arrives when it is back", func(t *testing.T) {
		leader := leaderOf(replicas...)
		e.svc.Stage(testsvc.Profile{Version: "v5", ErrorRatio: 0.001, Latency: 1})
		if _, err := e.svc.Deploy(); err != nil {
			t.Fatal(err)
		}
		stableBefore := leader.metric(t, "deploywatch_deploys_total", map[string]string{"workload": "api", "verdict": "stable"})
		c.setImageOf(t, ns, "api", "deploywatch.test/api:v5")
		d := measuring("deploywatch.test/api:v5")
		pg.Stop()
		waitFor(t, "the leader to notice", time.Minute, func() bool {
			return leader.metric(t, "deploywatch_store_errors_total", map[string]string{"what": "events"})+
				leader.metric(t, "deploywatch_store_errors_total", map[string]string{"what": "checkpoint"}) > 0
		})
		// The watch ends while the store is away (its monitor is 20s).
		waitFor(t, "the watch to end on the leader", time.Minute, func() bool {
			return leader.metric(t, "deploywatch_deploys_total", map[string]string{"workload": "api", "verdict": "stable"}) > stableBefore
		})
		pg.Start()
		got := ended(d.ID)
		if got.Verdict != store.Stable || len(got.Report) == 0 {
			t.Fatalf("after the store came back: %s (%s)", got.Verdict, got.Reason)
		}
		events, err := st.Events(context.Background(), d.ID, 0)
		if err != nil || len(events) == 0 || events[len(events)-1].Kind != "verdict" {
			t.Fatalf("the events stored: %d, %v", len(events), err)
		}
		for i, ev := range events {
			if ev.Seq != int64(i+1) {
				t.Fatalf("event %d has seq %d: events were lost or doubled", i, ev.Seq)
			}
		}
		page, err := st.ListDeploys(context.Background(), store.Query{Namespace: ns, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, dd := range page.Deploys {
			if seen[dd.Key] {
				t.Fatalf("deploy %s recorded twice", dd.Key)
			}
			seen[dd.Key] = true
		}
	})

	t.Run("SIGTERM hands the lease over at once", func(t *testing.T) {
		leader := leaderOf(replicas...)
		var next *serveProc
		for _, r := range replicas {
			if r != leader {
				next = r
			}
		}
		start := time.Now()
		_ = leader.cmd.Process.Signal(syscall.SIGTERM)
		if code := leader.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("serve exited %d on SIGTERM\n%s", code, leader.out)
		}
		waitFor(t, "the other replica to lead", lease, next.leader)
		took := time.Since(start)
		t.Logf("the other replica led %s after SIGTERM (lease %s)", took.Round(100*time.Millisecond), lease)
		if took > lease/2 {
			t.Fatalf("the handover took %s: the lease was not released", took)
		}
		l, err := c.cs.CoordinationV1().Leases(leaseNS).Get(context.Background(), "deploywatch", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			t.Fatalf("lease %+v, %v", l, err)
		}
	})
}
