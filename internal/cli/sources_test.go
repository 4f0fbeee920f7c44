package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploywatch/deploywatch/internal/watch"
)

// TestGenericSourcesJudgeADeploy: a watch whose metric is a command's
// output or a URL's JSON answer. The deploy hook makes the value bad, the
// watch fails the check on its absolute rule and rolls back, and the
// report says that the value had no significance test.
func TestGenericSourcesJudgeADeploy(t *testing.T) {
	dir := t.TempDir()
	value := filepath.Join(dir, "value")
	write := func(v string) {
		if err := os.WriteFile(value, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(dir, "value.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = 'queue_depth{service=\"api\"}' ] || { echo \"unexpected query: $1\" >&2; exit 2; }\nprintf '{\"value\": %s, \"samples\": 500}' \"$(cat "+value+")\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("query") != `queue_depth{service="api"}` || r.Header.Get("Authorization") != "Bearer web-secret" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		v, _ := os.ReadFile(value)
		fmt.Fprintf(w, `{"result": {"depth": %s, "n": 500}}`, v)
	}))
	defer web.Close()
	cases := map[string]string{
		"command": fmt.Sprintf("  command:\n    run: %s\n", script),
		"http":    fmt.Sprintf("  http:\n    url: %s/value\n    bearer_token_env: WEB_TOKEN\n    value: .result.depth\n    samples: .result.n\n", web.URL),
	}
	for name, source := range cases {
		t.Run(name, func(t *testing.T) {
			write("12")
			cfg := writeConfig(t, fmt.Sprintf(`service: api
target:
  command:
    deploy: "echo 480 > %[1]s"
    rollback: "echo 12 > %[1]s"
metrics:
%[2]s  selector: 'service="api"'
checks:
  - name: queue_depth
    query: 'queue_depth{$selector}'
    fail: "> 100"
phases:
  warmup: 0s
  verify: 1s
  monitor: 3s
  interval: 200ms
`, value, source))
			report := filepath.Join(t.TempDir(), "report.json")
			var out bytes.Buffer
			code := Run(context.Background(), []string{"run", "-f", cfg, "--version", "v2", "--report", report}, &out, &out,
				WithEnv(func(k string) (string, bool) {
					if k == "WEB_TOKEN" {
						return "web-secret", true
					}
					return "", false
				}))
			if code != ExitFailed {
				t.Fatalf("exit %d, want 1\n%s", code, out.String())
			}
			data, err := os.ReadFile(report)
			if err != nil {
				t.Fatal(err)
			}
			var r watch.Report
			if err := json.Unmarshal(data, &r); err != nil {
				t.Fatal(err)
			}
			if r.Rollback == nil || !r.Rollback.OK {
				t.Fatalf("rollback %+v", r.Rollback)
			}
			if v, _ := os.ReadFile(value); strings.TrimSpace(string(v)) != "12" {
				t.Errorf("value after the rollback %q", v)
			}
			c := r.Checks[0]
			if c.Value == nil || *c.Value != 480 || c.Samples == nil || *c.Samples != 500 || !strings.Contains(c.Statistic, "no significance test") {
				t.Errorf("check %+v", c)
			}
			if !strings.Contains(out.String(), "gives values, not counts") {
				t.Errorf("the watch does not say its source has no counts:\n%s", out.String())
			}
			if strings.Contains(out.String()+string(data), "web-secret") {
				t.Error("the token leaked into the output or the report")
			}
		})
	}
}

// TestValueSourcesRefuseWhatNeedsCounts: a ratio or a relative rule on a
// source that gives values is a config error naming the field.
func TestValueSourcesRefuseWhatNeedsCounts(t *testing.T) {
	cfg := writeConfig(t, `service: api
target:
  command: {rollback: "true"}
metrics:
  command: {run: ./value.sh}
checks:
  - {name: errors, type: ratio, bad: 'x', total: 'y', fail: "> 1%"}
  - {name: latency, query: 'p99', fail: "> 2x baseline"}
`)
	code, out := run(t, "validate", "-f", cfg)
	if code != ExitUsage || !strings.Contains(out, `checks[0].type: "ratio" needs counts, and metrics.command gives one value`) ||
		!strings.Contains(out, `checks[1].fail: "> 2x baseline" is relative to a baseline, which metrics.command cannot measure`) {
		t.Fatalf("exit %d\n%s", code, out)
	}
}
