package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/cli"
	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/testsvc"
)

// TestAnalyzeAndBacktestAgainstRealPrometheus records a history with known
// deploys in a real Prometheus (a bad release, rolled back by hand after
// 15s; later a good one), then judges them from that history: analyze
// finds the bad one failed, backtest tabulates both with precision and
// recall, and skips a deploy that is not over.
func TestAnalyzeAndBacktestAgainstRealPrometheus(t *testing.T) {
	if _, ok := testenv.PrometheusBinary(); !ok {
		testenv.Missing(t, "prometheus", "Debian package prometheus")
	}
	t.Parallel()
	e := newEnv(t, healthy, 50, 20*time.Second)
	e.monitor = "15s"
	deploy := func(p testsvc.Profile) time.Time {
		e.svc.Stage(p)
		at := time.Now()
		if _, err := e.svc.Deploy(); err != nil {
			t.Fatal(err)
		}
		return at
	}
	badAt := deploy(testsvc.Profile{Version: "v2", ErrorRatio: 0.08, Latency: 1})
	e.prom.WaitUntilScraped(t, badAt.Add(15*time.Second))
	resp, err := http.Post("http://"+e.svc.Addr+"/admin/rollback", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	e.prom.WaitUntilScraped(t, time.Now().Add(20*time.Second)) // healthy history before the next deploy
	goodAt := deploy(testsvc.Profile{Version: "v3", ErrorRatio: 0.001, Latency: 1})
	e.prom.WaitUntilScraped(t, goodAt.Add(21*time.Second)) // its warm-up and monitor window are over

	cfg := filepath.Join(e.dir, "deploywatch.yaml")
	text := strings.Replace(configFor(e.svc.Addr, e.prom.URL, ""), "monitor: 40s", "monitor: 15s", 1)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	code, out := runCLI(t, "analyze", "-f", cfg, "--version", "v2", "--deployed-at", badAt.Format(time.RFC3339Nano))
	if code != cli.ExitFailed || !strings.Contains(out, "would have been: failed") || !strings.Contains(out, "error_rate") {
		t.Fatalf("analyze of the bad deploy: exit %d\n%s", code, out)
	}
	code, out = runCLI(t, "analyze", "-f", cfg, "--version", "v3", "--deployed-at", fmt.Sprint(goodAt.Unix()))
	if code != cli.ExitStable {
		t.Fatalf("analyze of the good deploy: exit %d\n%s", code, out)
	}

	csv := filepath.Join(e.dir, "deploys.csv")
	rows := fmt.Sprintf("version,deployed_at,outcome\nv2,%s,bad\nv3,%d,good\nv4,%s,\n",
		badAt.UTC().Format(time.RFC3339Nano), goodAt.Unix(), time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if err := os.WriteFile(csv, []byte(rows), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = runCLI(t, "backtest", "-f", cfg, "--deploys", csv)
	if code != 0 {
		t.Fatalf("backtest: exit %d\n%s", code, out)
	}
	for _, want := range []string{"3 deploys: 1 failed, 1 stable, 0 inconclusive, 1 skipped", "precision 100%", "recall 100%", "not over yet"} {
		if !strings.Contains(out, want) {
			t.Errorf("backtest output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("\n%s", out)

	bad := filepath.Join(e.dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("version,deployed_at\nv2,yesterday\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := runCLI(t, "backtest", "-f", cfg, "--deploys", bad); code != cli.ExitUsage || !strings.Contains(out, "bad.csv:2: deployed_at") {
		t.Errorf("a bad row: exit %d, want 2 naming the line:\n%s", code, out)
	}
}
