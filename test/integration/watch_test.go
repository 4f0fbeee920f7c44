// Package integration runs deploywatch end to end, in-process through its
// CLI, against a real Prometheus server scraping a real service every
// second.
package integration

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/cli"
	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/testsvc"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// configFor is the config, as written, pointed at this test's
// service and Prometheus; a current hook records the running version.
func configFor(svc, prom string, extra string) string {
	return fmt.Sprintf(`service: api
environment: staging
target:
  command:
    deploy: "curl -sf -X POST http://%[1]s/admin/deploy"
    rollback: "curl -sf -X POST http://%[1]s/admin/rollback"
    current: "curl -sf http://%[1]s/admin/state | jq -r .version"
metrics:
  prometheus:
    url: %[2]s
  selector: 'job="api"'
baseline:
  window: 2m
phases:
  warmup: 5s
  monitor: 40s
  interval: 2s
on_failure: rollback        # rollback | pause | notify
%[3]s`, svc, prom, extra)
}

// env is one service, its traffic and a Prometheus scraping it.
type env struct {
	svc  *testsvc.Service
	prom *testenv.Prometheus
	dir  string
	// monitor replaces the config's 40s monitor phase when set.
	monitor string
	// promURL, when set, replaces Prometheus's address (a proxy in front
	// of it); promSettings are added to metrics.prometheus.
	promURL, promSettings string
	// secrets, when set, are the CLI's whole environment.
	secrets map[string]string
}

func newEnv(t testing.TB, initial testsvc.Profile, rps float64, history time.Duration) *env {
	t.Helper()
	svc := startService(t, initial, rps)
	prom := testenv.StartPrometheus(t, time.Second, svc.Addr)
	prom.WaitForHistory(t, history)
	return &env{svc: svc, prom: prom, dir: t.TempDir()}
}

// startService starts a test service with its own traffic, closed with
// the test.
func startService(t testing.TB, p testsvc.Profile, rps float64) *testsvc.Service {
	t.Helper()
	svc, err := testsvc.Start("127.0.0.1:0", p, rps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return svc
}

// runCLI runs deploywatch with args in process, bounded by 3 minutes,
// and returns its exit code and everything it printed.
func runCLI(t testing.TB, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := &syncBuffer{}
	code := cli.Run(ctx, args, out, out)
	return code, out.String()
}

type result struct {
	code   int
	report *watch.Report
	out    string
	// detect is the time from the deploy command to the failure decision.
	detect time.Duration
}

func (e *env) run(t testing.TB, extra string, args ...string) result {
	t.Helper()
	return e.runTo(t, &syncBuffer{}, extra, args...)
}

// runTo is run with the output written to out as it comes.
func (e *env) runTo(t testing.TB, out *syncBuffer, extra string, args ...string) result {
	t.Helper()
	promURL := cmp.Or(e.promURL, e.prom.URL)
	text := configFor(e.svc.Addr, promURL, extra)
	if e.promSettings != "" {
		text = strings.Replace(text, "    url: "+promURL+"\n", "    url: "+promURL+"\n"+e.promSettings, 1)
	}
	if e.monitor != "" {
		text = strings.Replace(text, "monitor: 40s", "monitor: "+e.monitor, 1)
	}
	return runConfig(t, e.dir, text, e.secrets, out, args...)
}

// runConfig writes the config text into dir and runs `run --version v2`
// of it in process, bounded by 3 minutes, with secrets as its whole
// environment (nil: the process's). The report is read back; a run that
// stopped on a config error (exit 2) has none.
func runConfig(t testing.TB, dir, text string, secrets map[string]string, out *syncBuffer, args ...string) result {
	t.Helper()
	cfg := filepath.Join(dir, "deploywatch.yaml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	reportPath := filepath.Join(dir, "report.json")
	_ = os.Remove(reportPath)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var opts []cli.Option
	if secrets != nil {
		opts = append(opts, cli.WithEnv(func(k string) (string, bool) { v, ok := secrets[k]; return v, ok }))
	}
	argv := append([]string{"run", "-f", cfg, "--version", "v2", "--report", reportPath}, args...)
	code := cli.Run(ctx, argv, out, out, opts...)
	r := result{code: code, out: out.String()}
	data, err := os.ReadFile(reportPath)
	if code == cli.ExitUsage && errors.Is(err, os.ErrNotExist) {
		return r
	}
	if err != nil {
		t.Fatalf("exit %d, no report: %v\n%s", code, err, out.String())
	}
	r.report = &watch.Report{}
	if err := json.Unmarshal(data, r.report); err != nil {
		t.Fatalf("report: %v", err)
	}
	if r.report.DetectedAt != nil {
		for _, p := range r.report.Phases {
			if p.Name == watch.PhaseRollout {
				r.detect = r.report.DetectedAt.Sub(p.StartedAt)
			}
		}
	}
	return r
}

var healthy = testsvc.Profile{Version: "v1", ErrorRatio: 0.001, Latency: 1}

func TestWatchAgainstRealPrometheus(t *testing.T) {
	if _, ok := testenv.PrometheusBinary(); !ok {
		testenv.Missing(t, "prometheus", "Debian package prometheus")
	}
	cases := []struct {
		name       string
		before     testsvc.Profile
		after      testsvc.Profile
		rps        float64
		wantCode   int
		wantCheck  string
		wantRolled bool
		maxDetect  time.Duration
		extra      string
		// history is how long Prometheus scrapes before the deploy
		// (default 20s): the baseline is measured on it.
		history time.Duration
		// wantPhase is the phase that fails, when not the monitor.
		wantPhase string
	}{
		{name: "crash-level errors fail inside the warm-up", before: healthy, after: testsvc.Profile{Version: "v2", ErrorRatio: 0.3, Latency: 1},
			rps: 50, wantCode: cli.ExitFailed, wantCheck: "error_rate", wantRolled: true, maxDetect: 30 * time.Second, wantPhase: watch.PhaseWarmup},
		{name: "a good deploy ends stable", before: healthy, after: testsvc.Profile{Version: "v2", ErrorRatio: 0.001, Latency: 1},
			rps: 50, wantCode: cli.ExitStable},
		{name: "5% errors at 50 req/s is rolled back within 30s", before: healthy, after: testsvc.Profile{Version: "v2", ErrorRatio: 0.05, Latency: 1},
			rps: 50, wantCode: cli.ExitFailed, wantCheck: "error_rate", wantRolled: true, maxDetect: 30 * time.Second},
		{name: "a p99 4x regression is rolled back within 30s", before: healthy, after: testsvc.Profile{Version: "v2", ErrorRatio: 0.001, Latency: 4},
			rps: 50, wantCode: cli.ExitFailed, wantCheck: "latency_p99", wantRolled: true, maxDetect: 30 * time.Second},
		{name: "1 req/s with 0.5% errors ends stable", before: testsvc.Profile{Version: "v1", ErrorRatio: 0.005, Latency: 1},
			after: testsvc.Profile{Version: "v2", ErrorRatio: 0.005, Latency: 1}, rps: 1, wantCode: cli.ExitStable},
		// The baseline must show the 2%: 14s of history (700 requests)
		// read 0.97% in one run, and a deploy judged against that is
		// rightly blamed for "2%" (the judge asks the two to differ
		// significantly, but a new sample that happens to run high still
		// can). A minute of history makes the baseline's 2% certain.
		{name: "2% errors before an unchanged deploy is not rolled back", before: testsvc.Profile{Version: "v1", ErrorRatio: 0.02, Latency: 1},
			after: testsvc.Profile{Version: "v2", ErrorRatio: 0.02, Latency: 1}, rps: 50, wantCode: cli.ExitStable, history: time.Minute},
		{name: "traffic that stops after the deploy is rolled back", before: healthy, after: testsvc.Profile{Version: "v2", Silent: true},
			rps: 50, wantCode: cli.ExitFailed, wantCheck: "request_rate", wantRolled: true, maxDetect: 30 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			history := c.history
			if history == 0 {
				history = 20 * time.Second
			}
			e := newEnv(t, c.before, c.rps, history)
			e.svc.Stage(c.after)
			r := e.run(t, c.extra)
			if r.code != c.wantCode {
				t.Fatalf("exit %d, want %d\n%s", r.code, c.wantCode, r.out)
			}
			cur, deploys, rollbacks := e.svc.Current()
			if deploys != 1 {
				t.Errorf("the deploy hook ran %d times", deploys)
			}
			if c.wantRolled {
				if rollbacks != 1 || cur.Version != "v1" {
					t.Fatalf("after the watch the service runs %s after %d rollbacks, want v1 after one\n%s", cur.Version, rollbacks, r.out)
				}
				rb := r.report.Rollback
				if rb == nil || !rb.Performed || !rb.OK || rb.Revision != "v1" {
					t.Errorf("report rollback = %+v", rb)
				}
				if !strings.HasPrefix(r.report.Reason, c.wantCheck+":") {
					t.Errorf("reason %q, want the %s check", r.report.Reason, c.wantCheck)
				}
				failedPhase := ""
				for _, p := range r.report.Phases {
					if p.Outcome == watch.OutcomeFailed {
						failedPhase = p.Name
					}
				}
				if want := cmp.Or(c.wantPhase, watch.PhaseMonitor); failedPhase != want {
					t.Errorf("the %s phase failed, want %s", failedPhase, want)
				}
				if r.detect <= 0 || r.detect > c.maxDetect {
					t.Errorf("detected %s after the deploy command, want within %s", r.detect, c.maxDetect)
				}
				t.Logf("detected in %s: %s", r.detect.Round(100*time.Millisecond), r.report.Reason)
			} else if rollbacks != 0 || cur.Version != "v2" {
				t.Fatalf("rolled back %d times; service runs %s\n%s", rollbacks, cur.Version, r.out)
			}
			if r.report.Deploy.PreviousVersion != "v1" {
				t.Errorf("previous revision %q, want v1 from the current hook", r.report.Deploy.PreviousVersion)
			}
			if r.report.Settings.ScrapeInterval != "1s" {
				t.Errorf("measured scrape interval %q, want 1s", r.report.Settings.ScrapeInterval)
			}
		})
	}
	t.Run("prometheus stopped mid-watch is inconclusive, no rollback", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, healthy, 50, 20*time.Second)
		e.svc.Stage(testsvc.Profile{Version: "v2", ErrorRatio: 0.001, Latency: 1})
		out := &syncBuffer{}
		done := make(chan struct{})
		go func() {
			// Stopped once the monitor has measured with it.
			for !strings.Contains(out.String(), `"event":"measured"`) {
				select {
				case <-done:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
			e.prom.Stop()
		}()
		r := e.runTo(t, out, "", "-o", "json")
		close(done)
		if r.code != cli.ExitInconclusive {
			t.Fatalf("exit %d, want 3\n%s", r.code, r.out)
		}
		monitor := r.report.Phases[len(r.report.Phases)-1]
		if monitor.Name != watch.PhaseMonitor || monitor.Outcome != watch.OutcomeInconclusive {
			t.Fatalf("the watch ended in %s (%s), want the monitor ended inconclusive", monitor.Name, monitor.Outcome)
		}
		if er := findReportCheck(r.report, "error_rate"); er == nil || er.Verdict != judge.Error || er.Measurements < 2 {
			t.Fatalf("error_rate %+v: want measured, then erroring", er)
		}
		if _, _, rollbacks := e.svc.Current(); rollbacks != 0 || r.report.Rollback == nil || r.report.Rollback.Performed {
			t.Fatalf("rolled back %d times, report %+v", rollbacks, r.report.Rollback)
		}
		if !strings.Contains(r.report.Reason, "connection refused") {
			t.Errorf("reason %q does not say why", r.report.Reason)
		}
	})
}

func TestBrokenConfigExitsTwoAndPointsAtTheLine(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "deploywatch.yaml")
	src := strings.Replace(configFor("127.0.0.1:1", "http://127.0.0.1:2", ""), "  interval: 2s", "  interval: 2 seconds", 1)
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code := cli.Run(context.Background(), []string{"run", "-f", cfg, "--version", "v2"}, &out, &out)
	if code != cli.ExitUsage {
		t.Fatalf("exit %d, want 2", code)
	}
	if want := cfg + ":17:13: phases.interval: \"2 seconds\" is not a duration"; !strings.Contains(out.String(), want) {
		t.Fatalf("output %q does not contain %q", out.String(), want)
	}
}
