package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/cli"
	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/testsvc"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// TestSinkFaults: every notification endpoint behind a proxy that stalls,
// resets, cuts its answers or trickles them byte by byte. The bad release
// is rolled back as fast as with healthy endpoints, and every delivery is
// accounted for in the report, failed or not.
func TestSinkFaults(t *testing.T) {
	cases := []struct {
		name  string
		fault testenv.Fault
		reset bool // reset the connections as they come, too
	}{
		{name: "healthy endpoints"},
		{name: "stalled endpoints", fault: testenv.Fault{Stall: true}},
		{name: "answers cut in the middle", fault: testenv.Fault{CutAfter: 12}},
		{name: "answers a byte at a time", fault: testenv.Fault{ByteDelay: 200 * time.Millisecond}},
		{name: "slow endpoints", fault: testenv.Fault{Latency: 3 * time.Second}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var received atomic.Int64
			sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				received.Add(1)
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"status":"ok","id":1234567890,"event":{"id":1}}`)
			}))
			defer sink.Close()
			proxy := testenv.StartFaultProxy(t, strings.TrimPrefix(sink.URL, "http://"))
			proxy.Set(c.fault)
			svc := startService(t, testsvc.Profile{Version: "v1", ErrorRatio: 0.001, Latency: 1}, 50)
			svc.Stage(testsvc.Profile{Version: "v2", ErrorRatio: 0.3, Latency: 1})
			dir := t.TempDir()
			cfg := filepath.Join(dir, "deploywatch.yaml")
			url := "http://" + proxy.Addr
			err := os.WriteFile(cfg, []byte(fmt.Sprintf(`service: api
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
`, svc.Addr, url)), 0o600)
			if err != nil {
				t.Fatal(err)
			}
			secrets := map[string]string{"DW_SLACK": url + "/services/T0/B0/slack-secret", "DW_GRAFANA": "grafana-secret", "DW_DD": "datadog-secret", "DW_HOOK": "hook-secret"}
			report := filepath.Join(dir, "report.json")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out := &syncBuffer{}
			start := time.Now()
			code := cli.Run(ctx, []string{"run", "-f", cfg, "--version", "v2", "--report", report}, out, out,
				cli.WithEnv(func(k string) (string, bool) { v, ok := secrets[k]; return v, ok }))
			took := time.Since(start)
			proxy.Set(testenv.Fault{})
			if code != cli.ExitFailed {
				t.Fatalf("exit %d, want 1\n%s", code, out)
			}
			data, err := os.ReadFile(report)
			if err != nil {
				t.Fatal(err)
			}
			var r watch.Report
			if err := json.Unmarshal(data, &r); err != nil {
				t.Fatal(err)
			}
			if r.Rollback == nil || !r.Rollback.OK || r.DetectedAt == nil {
				t.Fatalf("rollback %+v", r.Rollback)
			}
			if _, _, rollbacks := svc.Current(); rollbacks != 1 {
				t.Fatalf("%d rollbacks", rollbacks)
			}
			detect := r.DetectedAt.Sub(r.Deploy.StartedAt)
			if detect > 12*time.Second {
				t.Errorf("detected %s after the deploy: the endpoints delayed the judge", detect)
			}
			// Each sink is told of the start, the failure and the rollback.
			failed := 0
			perSink := map[string]int{}
			for _, d := range r.Deliveries {
				perSink[d.Sink]++
				if !d.OK {
					failed++
					if d.Error == "" {
						t.Errorf("a failed delivery without its error: %+v", d)
					}
				}
			}
			for _, s := range []string{"slack", "grafana", "datadog", "webhook"} {
				if perSink[s] == 0 {
					t.Errorf("no delivery to %s accounted for: %v", s, perSink)
				}
			}
			for _, v := range secrets {
				if strings.Contains(string(data)+out.String(), strings.TrimPrefix(v, url)) {
					t.Errorf("a secret reached the report or the output")
				}
			}
			t.Logf("detected after %s, run took %s; %d deliveries, %d failed, %d received", detect.Round(100*time.Millisecond),
				took.Round(100*time.Millisecond), len(r.Deliveries), failed, received.Load())
		})
	}
}
