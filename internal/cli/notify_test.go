package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/testsvc"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// TestHangingSinksDoNotDelayTheRollback: every sink hangs; the bad deploy
// is still detected and rolled back on time, the deliveries are reported
// as failed, and no secret reaches the report.
func TestHangingSinksDoNotDelayTheRollback(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // else the server never notices the client hang up
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)
	svc, err := testsvc.Start("127.0.0.1:0", testsvc.Profile{Version: "v1", ErrorRatio: 0.001, Latency: 1}, 50)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	svc.Stage(testsvc.Profile{Version: "v2", ErrorRatio: 0.3, Latency: 1})
	cfg := writeConfig(t, fmt.Sprintf(`service: api
target:
  command:
    deploy: "curl -sf -X POST http://%[1]s/admin/deploy"
    rollback: "curl -sf -X POST http://%[1]s/admin/rollback"
metrics:
  embedded:
    scrape: [{job: api, targets: ["%[1]s"], interval: 250ms}]
  selector: 'job="api"'
baseline: {window: 3s}
phases: {warmup: 1s, monitor: 20s, interval: 500ms}
notify:
  - slack: {webhook_url_env: DW_SLACK}
  - grafana: {url: "%[2]s", token_env: DW_GRAFANA}
  - datadog: {api_key_env: DW_DD, url: "%[2]s"}
  - webhook: {url: "%[2]s/hook", secret_env: DW_HOOK}
`, svc.Addr, hang.URL))
	secrets := map[string]string{"DW_SLACK": hang.URL + "/services/T0/B0/slack-secret-path", "DW_GRAFANA": "grafana-secret-token",
		"DW_DD": "datadog-secret-key", "DW_HOOK": "hook-secret"}
	report := filepath.Join(t.TempDir(), "r.json")
	var out bytes.Buffer
	start := time.Now()
	code := Run(context.Background(), []string{"run", "-f", cfg, "--version", "v2", "--report", report}, &out, &out,
		WithEnv(func(k string) (string, bool) { v, ok := secrets[k]; return v, ok }))
	took := time.Since(start)
	if code != 1 {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	data, _ := os.ReadFile(report)
	var r watch.Report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	if r.Rollback == nil || !r.Rollback.OK || r.DetectedAt == nil {
		t.Fatalf("rollback %+v", r.Rollback)
	}
	if d := r.DetectedAt.Sub(r.Deploy.StartedAt); d > 10*time.Second {
		t.Errorf("detected %s after the deploy: the hanging sinks delayed it", d)
	}
	if _, _, rollbacks := svc.Current(); rollbacks != 1 {
		t.Errorf("%d rollbacks", rollbacks)
	}
	if len(r.Deliveries) == 0 {
		t.Fatal("no deliveries reported")
	}
	for _, dl := range r.Deliveries {
		if dl.OK {
			t.Errorf("a delivery to a hanging server succeeded: %+v", dl)
		}
	}
	// Detection ~5s, plus the bounded 10s flush at exit.
	if took > 35*time.Second {
		t.Errorf("the run took %s", took)
	}
	for k, v := range secrets {
		if strings.Contains(string(data), strings.TrimPrefix(v, hang.URL)) || strings.Contains(out.String(), strings.TrimPrefix(v, hang.URL)) {
			t.Errorf("secret %s leaked into the report or output", k)
		}
	}
}
