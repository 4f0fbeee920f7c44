package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/cli"
	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/testsvc"
)

// TestDatadogWatch: the watch reads Datadog's APM metrics from a loopback
// Datadog that checks every request against the documented query API and
// is fed, every second, by an agent that reads the test service: a bad
// release is rolled back on the error counts, a good one ends stable with
// its p99 judged against the version it replaced.
func TestDatadogWatch(t *testing.T) {
	const apiKey, appKey = "dd-integration-api-key", "dd-integration-app-key"
	cases := []struct {
		name     string
		after    testsvc.Profile
		wantCode int
		wantRoll bool
		// limit is Datadog's rate limit: queries per 2 s (0: none).
		limit int
	}{
		{"a bad release is rolled back", testsvc.Profile{Version: "v2", ErrorRatio: 0.08, Latency: 1}, cli.ExitFailed, true, 0},
		{"a good release ends stable", testsvc.Profile{Version: "v2", ErrorRatio: 0.001, Latency: 1}, cli.ExitStable, false, 0},
		// 4 queries a look every 2 s against 3 allowed in 2 s: looks wait
		// for the limit to reset, the watch still decides, and says so.
		{"a rate-limited Datadog still sees a bad release", testsvc.Profile{Version: "v2", ErrorRatio: 0.08, Latency: 1}, cli.ExitFailed, true, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			svc := startService(t, healthy, 50)
			dd := testenv.StartDatadog(t, apiKey, appKey)
			dd.Follow(t, svc.Addr, "api", "staging", "http.request", time.Second)
			dd.WaitForFlushes(t, 15)
			svc.Stage(c.after)
			if c.limit > 0 {
				dd.Limit(c.limit, 2*time.Second)
			}
			dir := t.TempDir()
			text := fmt.Sprintf(`service: api
environment: staging
target:
  command:
    deploy: "curl -sf -X POST http://%[1]s/admin/deploy"
    rollback: "curl -sf -X POST http://%[1]s/admin/rollback"
    current: "curl -sf http://%[1]s/admin/state | jq -r .version"
metrics:
  datadog:
    url: %[2]s
    api_key_env: DD_API_KEY
    app_key_env: DD_APP_KEY
  scrape_interval: 1s   # the test's agent flushes every second (Datadog's every 10)
baseline:
  window: 12s           # the agent has flushed 15 times: Datadog holds that much
phases:
  warmup: 5s
  monitor: 30s
  interval: 2s
`, svc.Addr, dd.URL)
			out := &syncBuffer{}
			res := runConfig(t, dir, text, map[string]string{"DD_API_KEY": apiKey, "DD_APP_KEY": appKey}, out)
			if res.code != c.wantCode {
				t.Fatalf("exit %d, want %d\n%s", res.code, c.wantCode, out)
			}
			r := res.report
			cur, deploys, rollbacks := svc.Current()
			if c.wantRoll {
				if deploys != 1 || rollbacks != 1 || cur.Version != "v1" || r.Rollback == nil || !r.Rollback.OK {
					t.Fatalf("service runs %s after %d deploys, %d rollbacks; report %+v\n%s", cur.Version, deploys, rollbacks, r.Rollback, out)
				}
				if !strings.HasPrefix(r.Reason, "error_rate:") {
					t.Errorf("reason %q, want the error_rate check", r.Reason)
				}
			} else if rollbacks != 0 {
				t.Fatalf("a good release was rolled back: %s", r.Reason)
			}
			er, p99 := findReportCheck(r, "error_rate"), findReportCheck(r, "latency_p99")
			if er == nil || er.Samples == nil || *er.Samples < 100 || er.Baseline == nil {
				t.Errorf("error_rate %+v: want counts of requests and a baseline", er)
			}
			if p99 == nil || p99.Baseline == nil || !strings.Contains(p99.Statistic, "p99") {
				t.Errorf("latency_p99 %+v: want a baseline from v1 and the statistic named", p99)
			}
			if !strings.Contains(er.Query, "version:v2") {
				t.Errorf("error_rate query %q does not name the version judged", er.Query)
			}
			if v := dd.Violations(); len(v) > 0 {
				t.Errorf("requests broke Datadog's documented API: %v", v)
			}
			if met := strings.Contains(out.String(), "rate limit was met"); met != (c.limit > 0) {
				t.Errorf("the output says the rate limit was met: %v, want %v\n%s", met, c.limit > 0, out)
			}
			t.Logf("%d Datadog queries; %s", dd.Queries(), r.Reason)
		})
	}
}
