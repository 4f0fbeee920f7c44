package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/cli"
	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/testsvc"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// TestControlGroupAgainstRealPrometheus: two instances of a service behind
// one Prometheus job; the deploy changes one, the other is the control
// group (baseline.control). A dependency outage that starts with the
// deploy and hits both at once is not blamed on the release: the watch
// ends inconclusive and nothing is rolled back. The same errors on the
// new instance alone are the release's: rolled back, the evidence naming
// the side-by-side comparison.
func TestControlGroupAgainstRealPrometheus(t *testing.T) {
	if _, ok := testenv.PrometheusBinary(); !ok {
		testenv.Missing(t, "prometheus", "Debian package prometheus")
	}
	errors := testsvc.Profile{Version: "v2", ErrorRatio: 0.08, Latency: 1}
	silent := testsvc.Profile{Version: "v2", ErrorRatio: 0.001, Latency: 1, Silent: true}
	cases := []struct {
		name         string
		release      testsvc.Profile // the new instance once the deploy begins
		controlAfter testsvc.Profile // the control instance once the deploy begins
		check        string          // the check that decides
		want         string          // in the reason
		wantCode     int
		wantRolled   int
	}{
		{name: "an outage in both is a shared cause", release: errors, controlAfter: testsvc.Profile{Version: "v1", ErrorRatio: 0.08, Latency: 1},
			check: "error_rate", want: "shared cause", wantCode: cli.ExitInconclusive},
		{name: "errors in the new instance alone are the release's", release: errors, controlAfter: testsvc.Profile{Version: "v1", ErrorRatio: 0.001, Latency: 1},
			check: "error_rate", want: "significantly better", wantCode: cli.ExitFailed, wantRolled: 1},
		{name: "traffic that stops reaching both is upstream", release: silent, controlAfter: testsvc.Profile{Version: "v1", ErrorRatio: 0.001, Latency: 1, Silent: true},
			check: "request_rate", want: "shared cause upstream", wantCode: cli.ExitInconclusive},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			svc := startService(t, healthy, 50)
			ctl := startService(t, healthy, 50)
			prom := testenv.StartPrometheus(t, time.Second, svc.Addr, ctl.Addr)
			prom.WaitForHistory(t, 20*time.Second)
			svc.Stage(c.release)
			ctl.Stage(c.controlAfter)
			dir := t.TempDir()
			cfg := filepath.Join(dir, "deploywatch.yaml")
			text := fmt.Sprintf(`service: api
environment: staging
target:
  command:
    # The second request starts what happens to the control group at the
    # same moment: a dependency outage, or nothing.
    deploy: "curl -sf -X POST http://%[1]s/admin/deploy && curl -sf -X POST http://%[2]s/admin/deploy"
    rollback: "curl -sf -X POST http://%[1]s/admin/rollback"
    current: "curl -sf http://%[1]s/admin/state | jq -r .version"
metrics:
  prometheus:
    url: %[3]s
  selector: 'job="api",instance="%[1]s"'
baseline:
  window: 2m
  control: 'job="api",instance="%[2]s"'
phases:
  warmup: 5s
  monitor: 40s
  interval: 2s
`, svc.Addr, ctl.Addr, prom.URL)
			if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			reportPath := filepath.Join(dir, "report.json")
			code, out := runCLI(t, "run", "-f", cfg, "--version", "v2", "--report", reportPath)
			if code != c.wantCode {
				t.Fatalf("exit %d, want %d\n%s", code, c.wantCode, out)
			}
			if _, _, rollbacks := svc.Current(); rollbacks != c.wantRolled {
				t.Fatalf("%d rollbacks, want %d\n%s", rollbacks, c.wantRolled, out)
			}
			data, err := os.ReadFile(reportPath)
			if err != nil {
				t.Fatal(err)
			}
			var rep watch.Report
			if err := json.Unmarshal(data, &rep); err != nil {
				t.Fatal(err)
			}
			var er *watch.CheckResult
			for _, ch := range rep.Checks {
				if ch.Name == c.check {
					er = ch
				}
			}
			if er == nil || er.Comparison != "control" || er.Control == nil {
				t.Fatalf("%s = %+v: want the control group's value and the comparison named", c.check, er)
			}
			if !strings.HasPrefix(rep.Reason, c.check+": ") || !strings.Contains(rep.Reason, c.want) {
				t.Errorf("reason %q, want %s to say %q", rep.Reason, c.check, c.want)
			}
			t.Logf("%s: %s", rep.Verdict, rep.Reason)
		})
	}
}
