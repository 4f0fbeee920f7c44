package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/deploywatch/deploywatch/internal/cli"
	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/testsvc"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// whenOutput runs f once the watch's JSON output has a line holding every
// part, and returns a function that stops waiting.
func whenOutput(out *syncBuffer, f func(), parts ...string) (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			for line := range strings.SplitSeq(out.String(), "\n") {
				all := true
				for _, p := range parts {
					all = all && strings.Contains(line, p)
				}
				if all {
					f()
					return
				}
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done) }
}

// TestPrometheusFaults puts a fault-injecting proxy between the watch and
// a real Prometheus.
func TestPrometheusFaults(t *testing.T) {
	if _, ok := testenv.PrometheusBinary(); !ok {
		testenv.Missing(t, "prometheus", "Debian package prometheus")
	}
	// A query gives up after 2 s and is retried once: a look errs after
	// about 4.3 s of stall, and 3 looks in a row (judge.error_limit) end
	// the watch.
	const settings = "    timeout: 2s\n    retries: 1\n"
	const bound = 3*(2*2*time.Second+300*time.Millisecond) + 3*2*time.Second
	// proxied is a good release whose watch reads Prometheus through a
	// fault proxy.
	proxied := func(t *testing.T) (*env, *testenv.FaultProxy) {
		e := newEnv(t, healthy, 50, 20*time.Second)
		proxy := testenv.StartFaultProxy(t, strings.TrimPrefix(e.prom.URL, "http://"))
		e.promURL, e.promSettings = "http://"+proxy.Addr, settings
		e.svc.Stage(testsvc.Profile{Version: "v2", ErrorRatio: 0.001, Latency: 1})
		return e, proxy
	}

	t.Run("a stall longer than the bound ends the watch inconclusive, no rollback", func(t *testing.T) {
		t.Parallel()
		e, proxy := proxied(t)
		out := &syncBuffer{}
		var stalledAt time.Time
		stop := whenOutput(out, func() { stalledAt = time.Now(); proxy.Set(testenv.Fault{Stall: true}) }, `"event":"measured"`, `"phase":"monitor"`)
		r := e.runTo(t, out, "", "-o", "json")
		stop()
		ended := time.Now()
		if r.code != cli.ExitInconclusive {
			t.Fatalf("exit %d, want 3\n%s", r.code, r.out)
		}
		if _, _, rollbacks := e.svc.Current(); rollbacks != 0 || r.report.Rollback == nil || r.report.Rollback.Performed {
			t.Fatalf("rolled back %d times on missing data", rollbacks)
		}
		took := ended.Sub(stalledAt)
		if stalledAt.IsZero() || took > bound+10*time.Second {
			t.Errorf("the watch ended %s after the stall began, want within the documented bound %s", took, bound)
		}
		t.Logf("stalled source: inconclusive %s after the stall began (bound %s): %s", took.Round(100*time.Millisecond), bound, r.report.Reason)
	})

	t.Run("a stall shorter than the bound: the watch goes on", func(t *testing.T) {
		t.Parallel()
		e, proxy := proxied(t)
		out := &syncBuffer{}
		stop := whenOutput(out, func() { proxy.Set(testenv.Fault{Stall: true}) }, `"event":"measured"`, `"phase":"monitor"`)
		// Healed at the first look that erred: one error, not three.
		heal := whenOutput(out, func() { proxy.Set(testenv.Fault{}) }, `"event":"measured"`, `"verdict":"error"`)
		r := e.runTo(t, out, "", "-o", "json")
		stop()
		heal()
		if r.code != cli.ExitStable {
			t.Fatalf("exit %d, want 0: a short stall must not end the watch\n%s", r.code, r.out)
		}
		// Measured again after the stall: passing, or warning on the healthy
		// service's own 0.1% errors, not erring.
		if er := findReportCheck(r.report, "error_rate"); er == nil || er.Verdict != judge.Pass && er.Verdict != judge.Warn {
			t.Errorf("error_rate %+v: want measured again after the stall", er)
		}
	})

	t.Run("answers cut in the middle and reset connections are errors, not data", func(t *testing.T) {
		t.Parallel()
		e, proxy := proxied(t)
		out := &syncBuffer{}
		stop := whenOutput(out, func() { proxy.Set(testenv.Fault{CutAfter: 120}) }, `"event":"measured"`, `"phase":"monitor"`)
		r := e.runTo(t, out, "", "-o", "json")
		stop()
		if r.code != cli.ExitInconclusive || r.report.Rollback.Performed {
			t.Fatalf("exit %d, want 3 without a rollback\n%s", r.code, r.out)
		}
	})

	t.Run("Prometheus restarted mid-watch: the same verdict", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, healthy, 50, 20*time.Second)
		e.promSettings = settings
		e.svc.Stage(testsvc.Profile{Version: "v2", ErrorRatio: 0.05, Latency: 1})
		out := &syncBuffer{}
		restarted := make(chan struct{})
		stop := whenOutput(out, func() { e.prom.Restart(t); close(restarted) }, `"event":"phase_started"`, `"phase":"warmup"`)
		r := e.runTo(t, out, "", "-o", "json")
		stop()
		select {
		case <-restarted:
		default:
			t.Fatal("Prometheus was not restarted during the watch")
		}
		if r.code != cli.ExitFailed || r.report.Rollback == nil || !r.report.Rollback.OK || !strings.HasPrefix(r.report.Reason, "error_rate:") {
			t.Fatalf("exit %d (%s), want the bad release rolled back as without the restart\n%s", r.code, r.report.Reason, r.out)
		}
		if _, deploys, rollbacks := e.svc.Current(); deploys != 1 || rollbacks != 1 {
			t.Fatalf("%d deploys, %d rollbacks", deploys, rollbacks)
		}
		var phase string
		for _, p := range r.report.Phases {
			if p.Outcome == watch.OutcomeFailed {
				phase = p.Name
			}
		}
		t.Logf("restarted in the warm-up; failed in %s after %s: %s", phase, r.detect.Round(100*time.Millisecond), r.report.Reason)
	})
}

// TestServeWithPrometheusStalled: serve's watch of a deploy whose metric
// source stalls (a proxy that accepts and never answers) ends
// inconclusive, and nothing is rolled back.
func TestServeWithPrometheusStalled(t *testing.T) {
	c := kubeCluster(t)
	bin := buildBinary(t)
	t.Parallel()
	ns := c.namespace(t)
	kubeconfig := c.serviceAccountKubeconfig(t, ns, nil)
	e := newEnv(t, healthy, 20, 5*time.Second)
	proxy := testenv.StartFaultProxy(t, strings.TrimPrefix(e.prom.URL, "http://"))
	dir := t.TempDir()
	c.deployment(t, ns, "api", "deploywatch.test/api:v1", func(d *appsv1.Deployment) { d.Labels[watchLabel] = "true" })
	srv := startServe(t, bin, dir, fmt.Sprintf(`kubernetes:
  namespaces: [%s]
  kubeconfig: %s
store:
  sqlite: %s
defaults:
  metrics:
    prometheus: {url: "http://%s", timeout: 1s, retries: 0}
    selector: 'job="api"'
    scrape_interval: 1s
  baseline: {window: 1m}
  phases: {warmup: 1s, monitor: 20s, interval: 1s}
  on_failure: rollback
  on_inconclusive: notify
`, ns, kubeconfig, filepath.Join(dir, "deploywatch.db"), proxy.Addr))
	waitFor(t, "serve to be ready", time.Minute, srv.ready)
	proxy.Set(testenv.Fault{Stall: true})
	start := time.Now()
	c.setImageOf(t, ns, "api", "deploywatch.test/api:v2")
	inconclusive := map[string]string{"namespace": ns, "workload": "api", "verdict": "inconclusive"}
	waitFor(t, "the watch to end inconclusive", 2*time.Minute, func() bool { return srv.metric(t, "deploywatch_deploys_total", inconclusive) == 1 })
	took := time.Since(start)
	if img := c.image(t, ns, "api"); img != "deploywatch.test/api:v2" {
		t.Fatalf("the workload runs %s: rolled back on missing data", img)
	}
	if n := srv.metric(t, "deploywatch_rollbacks_total", map[string]string{"workload": "api", "result": "ok"}); n != 0 {
		t.Fatalf("%v rollbacks", n)
	}
	t.Logf("serve's watch ended inconclusive %s after the change, its source stalled", took.Round(100*time.Millisecond))
}
