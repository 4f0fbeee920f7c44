package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/testenv"
)

// TestPlanAgainstRealPrometheus: plan measures the traffic before now in
// a real Prometheus and says what a watch could see: at 50 req/s every
// check can judge within the 40s monitor (exit 0); at 0.3 req/s the error
// share cannot (exit 1, with what to change); an unreachable Prometheus is
// exit 2.
func TestPlanAgainstRealPrometheus(t *testing.T) {
	if _, ok := testenv.PrometheusBinary(); !ok {
		testenv.Missing(t, "prometheus", "Debian package prometheus")
	}
	plan := func(t *testing.T, e *env, promURL string) (int, string) {
		t.Helper()
		cfg := filepath.Join(e.dir, "deploywatch.yaml")
		if err := os.WriteFile(cfg, []byte(configFor(e.svc.Addr, promURL, "")), 0o600); err != nil {
			t.Fatal(err)
		}
		return runCLI(t, "plan", "-f", cfg)
	}
	t.Run("busy service", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, healthy, 50, 20*time.Second)
		code, out := plan(t, e, e.prom.URL)
		if code != 0 || !strings.Contains(out, "✓ error_rate: an error share above") || !strings.Contains(out, "✓ request_rate: a drop to") ||
			!strings.Contains(out, "scrape every 1s (measured)") {
			t.Fatalf("exit %d, want 0 with every check able to judge:\n%s", code, out)
		}
		t.Logf("\n%s", out)
	})
	t.Run("quiet service", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, healthy, 0.3, 20*time.Second)
		code, out := plan(t, e, e.prom.URL)
		if code != 1 || !strings.Contains(out, "✗ error_rate: at 0.") || !strings.Contains(out, "raise phases.monitor to") {
			t.Fatalf("exit %d, want 1 with error_rate unable to judge:\n%s", code, out)
		}
		t.Logf("\n%s", out)
	})
	t.Run("unreachable prometheus", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, healthy, 50, 0)
		code, out := plan(t, e, "http://127.0.0.1:1")
		if code != 2 || !strings.Contains(out, "could not measure") {
			t.Fatalf("exit %d, want 2 naming the source:\n%s", code, out)
		}
	})
}
