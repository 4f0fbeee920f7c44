package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := Run(context.Background(), args, &out, &out, WithEnv(func(string) (string, bool) { return "", false }))
	return code, out.String()
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "deploywatch.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// unreachable is a config whose Prometheus does not answer (nothing
// listens on port 1), with phases short enough for a unit test.
const unreachable = `service: api
target:
  command:
    deploy: "echo deploying $DEPLOYWATCH_VERSION"
    rollback: "echo rolling back"
metrics:
  prometheus:
    url: http://127.0.0.1:1
    retries: 0
    timeout: 1s
  selector: 'job="api"'
  scrape_interval: 1s
baseline:
  window: 1m
phases:
  warmup: 0s
  verify: 5s
  monitor: 1s
  interval: 100ms
`

func TestExitCodes(t *testing.T) {
	good := writeConfig(t, unreachable)
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"validate prints the effective config", []string{"validate", "-f", good}, 0, "error_rate"},
		{"a missing config is usage", []string{"validate", "-f", "/nonexistent/dw.yaml"}, 2, "/nonexistent/dw.yaml: cannot read the config: no such file or directory (give it with -f)"},
		{"a missing config for run is usage", []string{"run", "-f", "/nonexistent/dw.yaml"}, 2, "give it with -f"},
		{"an unknown flag is usage", []string{"watch", "--nope"}, 2, "unknown flag: --nope"},
		{"an unknown command is usage", []string{"wat"}, 2, "unknown command"},
		{"a bad output format is usage", []string{"watch", "-f", good, "--output", "yaml"}, 2, "--output \"yaml\""},
		{"a bad start time is usage", []string{"watch", "-f", good, "--started-at", "yesterday"}, 2, "--started-at \"yesterday\""},
		{"--commit-time without --server is usage", []string{"watch", "-f", good, "--commit-time", "2026-11-30T09:00:00Z"}, 2, "give --server too"},
		{"a bad commit time is usage", []string{"watch", "-f", good, "--server", "http://127.0.0.1:1", "--commit-time", "last week"}, 2, `--commit-time "last week"`},
		{"a bad server URL is usage", []string{"run", "-f", good, "--server", "serve:8080"}, 2, `--server "serve:8080": want http(s)://host`},
		{"--server without a token is usage", []string{"run", "-f", good, "--server", "http://127.0.0.1:1"}, 2, "$DEPLOYWATCH_SERVER_TOKEN is empty"},
		{"--server's token from another variable", []string{"run", "-f", good, "--server", "http://127.0.0.1:1", "--server-token-env", "CI_TOKEN"}, 2, "$CI_TOKEN is empty"},
		{"--server with --resume is usage", []string{"watch", "--resume", "/nonexistent/state", "--server", "http://127.0.0.1:1"}, 2, "--server cannot be given with --resume"},
		{"watch takes no arguments", []string{"watch", "-f", good, "extra"}, 2, "unknown command"},
		{"an unreachable source is inconclusive", []string{"run", "-f", good, "--version", "v9"}, 3, "INCONCLUSIVE"},
		{"version", []string{"version"}, 0, "deploywatch "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := run(t, c.args...)
			if code != c.code || !strings.Contains(out, c.out) {
				t.Fatalf("exit %d, want %d; output does not contain %q:\n%s", code, c.code, c.out, out)
			}
		})
	}
}

func TestBadConfigExitsTwoWithPosition(t *testing.T) {
	p := writeConfig(t, strings.Replace(unreachable, "interval: 100ms", "interval: 100", 1))
	code, out := run(t, "validate", "-f", p)
	if code != 2 || !strings.Contains(out, p+":19:13: phases.interval: \"100\" is not a duration") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestJSONOutputIsOneEventPerLine(t *testing.T) {
	p := writeConfig(t, unreachable)
	report := filepath.Join(t.TempDir(), "r.json")
	code, out := run(t, "run", "-f", p, "--version", "v9", "--output", "json", "--report", report)
	if code != 3 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	kinds := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		kinds[e["event"].(string)] = true
	}
	for _, k := range []string{"started", "phase_started", "hook_output", "verdict"} {
		if !kinds[k] {
			t.Errorf("no %s event in:\n%s", k, out)
		}
	}
	var r map[string]any
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &r); err != nil || r["verdict"] != "inconclusive" {
		t.Fatalf("report %s (%v)", data, err)
	}
	for _, key := range []string{"deploy", "phases", "checks", "detected_at", "rollback", "deliveries"} {
		if _, ok := r[key]; !ok {
			t.Errorf("report lacks %q", key)
		}
	}
}

func TestParseStartedAt(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Time{
		"":                     {},
		"2026-11-25T11:58:00Z": time.Date(2026, 11, 25, 11, 58, 0, 0, time.UTC),
		"90s":                  now.Add(-90 * time.Second),
		"5m ago":               now.Add(-5 * time.Minute),
		"1764072000":           time.Unix(1764072000, 0),
	}
	for in, want := range cases {
		got, err := parseStartedAt(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseStartedAt(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseStartedAt("-5m", now); err == nil {
		t.Error("a negative duration was accepted")
	}
}
