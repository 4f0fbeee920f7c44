package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/cli"
	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/testsvc"
)

// TestSyntheticTrafficJudgesAQuietService: a service at 0.1 req/s cannot
// be judged in a 40s monitor from its own traffic; with traffic: (the
// smoke suite's request at 20 req/s, marked with a header) a release at
// 20% errors is rolled back within the monitor window, and a good release
// still holds.
func TestSyntheticTrafficJudgesAQuietService(t *testing.T) {
	if _, ok := testenv.PrometheusBinary(); !ok {
		testenv.Missing(t, "prometheus", "Debian package prometheus")
	}
	cases := []struct {
		name     string
		after    testsvc.Profile
		wantCode int
	}{
		{"a bad release is rolled back", testsvc.Profile{Version: "v2", ErrorRatio: 0.2, Latency: 1}, cli.ExitFailed},
		{"a good release holds", testsvc.Profile{Version: "v2", ErrorRatio: 0.001, Latency: 1}, cli.ExitStable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, healthy, 0.1, 20*time.Second)
			e.svc.Stage(c.after)
			suite := filepath.Join(e.dir, "smoke.yaml")
			if err := os.WriteFile(suite, []byte("checks:\n  - {name: api, path: /api, expect: {status: [200, 500]}}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			r := e.run(t, "verify:\n  base_url: http://"+e.svc.Addr+"\n  smoke: smoke.yaml\ntraffic:\n  rate: 20\n")
			if r.code != c.wantCode {
				t.Fatalf("exit %d, want %d\n%s", r.code, c.wantCode, r.out)
			}
			tr := r.report.Traffic
			if tr == nil || tr.Sent < 20 || tr.Failed != 0 {
				t.Fatalf("traffic %+v: want synthetic requests, all answered", tr)
			}
			if c.wantCode == cli.ExitFailed && !strings.HasPrefix(r.report.Reason, "error_rate") {
				t.Errorf("reason %q", r.report.Reason)
			}
			if !strings.Contains(r.out, "synthetic traffic") {
				t.Errorf("the watch did not say what synthetic traffic lets it see:\n%s", r.out)
			}
			t.Logf("%s after %d synthetic requests (%d 5xx): %s", r.report.Verdict, tr.Sent, tr.ServerErrors, r.report.Reason)
		})
	}
}
