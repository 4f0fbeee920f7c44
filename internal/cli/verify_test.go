package cli

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploywatch/deploywatch/internal/demo"
)

// TestVerifyPhaseFailsTheDeploy: run with a verify section whose version
// item fails ends failed, rolled back, with the item as the reason.
func TestVerifyPhaseFailsTheDeploy(t *testing.T) {
	svc, err := demo.Start("127.0.0.1:0", demo.Stable, 30)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	marker := filepath.Join(t.TempDir(), "rolled-back")
	cfg := writeConfig(t, fmt.Sprintf(`service: api
target:
  command:
    deploy: "true"
    rollback: "touch %s"
metrics:
  embedded:
    scrape: [{job: api, targets: ["%s"], interval: 200ms}]
  selector: 'job="api"'
baseline: {window: 2s}
phases: {warmup: 0s, monitor: 2s, interval: 400ms, verify: 5s}
verify:
  base_url: http://%s
  ready_url: /health/ready
  info_url: /health/info
  version_field: .version
  settle: 1s
`, marker, svc.Addr, svc.Addr))
	code, out := run(t, "run", "-f", cfg, "--version", "v9.9.9")
	if code != 1 || !strings.Contains(out, "verify version: the service runs .version v1.0.0, but v9.9.9 was deployed") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "rollback passed") {
		t.Errorf("no rollback:\n%s", out)
	}
	// The right version passes the checklist and the deploy.
	code, out = run(t, "run", "-f", cfg, "--version", "v1.0.0")
	if code != 0 || !strings.Contains(out, "ready passed") || !strings.Contains(out, "version passed") || !strings.Contains(out, "metrics passed") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// TestVerifyCommandNamesMissingMetrics: a target that is up but exports no
// request metrics fails the metrics item.
func TestVerifyCommandNamesMissingMetrics(t *testing.T) {
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			w.Write([]byte("# TYPE build_info gauge\nbuild_info 1\n"))
		case "/health/ready":
			w.Write([]byte(`{"status":"ready"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer bare.Close()
	addr := strings.TrimPrefix(bare.URL, "http://")
	cfg := writeConfig(t, fmt.Sprintf(`service: api
target:
  command: {rollback: "true"}
metrics:
  embedded:
    scrape: [{job: api, targets: ["%s"], interval: 100ms}]
  selector: 'job="api"'
verify:
  base_url: %s
  ready_url: /health/ready
`, addr, bare.URL))
	code, out := run(t, "verify", "-f", cfg)
	if code != 1 || !strings.Contains(out, `✗ metrics  count(http_requests_total{job="api"}) has no series`) ||
		!strings.Contains(out, "✓ ready") || !strings.Contains(out, "- version") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}
