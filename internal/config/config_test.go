package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/judge"
	"go.yaml.in/yaml/v3"
)

func TestGoodFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.good.yaml")
	if len(files) == 0 {
		t.Fatal("no good fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := LoadFile(f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestIssueExampleGetsTheSeedsTable(t *testing.T) {
	c, err := LoadFile("testdata/issue.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Phases.Interval.D(); got != 2*time.Second {
		t.Errorf("interval = %s", got)
	}
	names := map[string]Check{}
	for _, ch := range c.Checks {
		names[ch.Name] = ch
	}
	er := names["error_rate"]
	if er.Type != TypeRatio || er.Fail.String() != "> 1%" || er.Warn.String() != "> 0.1%" ||
		!strings.Contains(er.Bad, `status=~"5.."`) || er.FailureLimit != 0 || er.MinRequests != 20 {
		t.Errorf("error_rate = %+v", er)
	}
	// The default judge is sequential for what accumulates, spent over the
	// looks for the sliding request rate.
	for name, want := range map[string]judge.Test{"error_rate": judge.Sequential, "latency_p99": judge.Sequential, "request_rate": judge.Spent} {
		ch := names[name]
		if got := ch.Test(); got != want || ch.Failures() != 1 {
			t.Errorf("%s: test %s, failures %d; want %s, 1", name, got, ch.Failures(), want)
		}
	}
	if p := names["latency_p99"]; p.Fail.String() != "> 2x baseline" || p.Warn.String() != "> 500ms" || p.Quantile != 0.99 {
		t.Errorf("latency_p99 = %+v", p)
	}
	if r := names["request_rate"]; r.OnNoData != NoDataFail {
		t.Errorf("request_rate must fail when the series vanish: %+v", r)
	}
	if len(c.Skipped) != 2 {
		t.Errorf("cpu and memory must be skipped without limits: %+v", c.Skipped)
	}
	if c.Target.Command.Shell != "/bin/sh" || c.Target.Command.Timeouts.Rollback.D() != 5*time.Minute {
		t.Errorf("command defaults not applied: %+v", c.Target.Command)
	}
}

func TestEmbeddedKnowsItsScrapeInterval(t *testing.T) {
	c, err := LoadFile("testdata/embedded.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := c.Metrics.Embedded
	if c.Metrics.ScrapeInterval.D() != time.Second || e.Retention.D() != time.Hour || e.Scrape[0].Path != "/metrics" {
		t.Fatalf("embedded defaults: scrape %s, %+v", c.Metrics.ScrapeInterval.D(), e)
	}
	src := strings.Replace(read(t, "testdata/embedded.good.yaml"), `targets: ["127.0.0.1:8000"]`, `targets: ["localhost"]`, 1)
	src = strings.Replace(src, "interval: 1s", "interval: 10ms", 1)
	_, err = Load([]byte(src), "e.yaml")
	for _, want := range []string{`metrics.embedded.scrape[0].targets[0]: "localhost": want host:port`, "metrics.embedded.scrape[0].interval: must be at least 100ms"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

func TestCustomChecksAndLabels(t *testing.T) {
	c, err := LoadFile("testdata/custom.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Checks) != 3 || c.Checks[0].FailureLimit != 3 || c.Checks[1].Type != TypeQuery {
		t.Fatalf("checks = %+v", c.Checks)
	}
	if got := c.Metrics.ScrapeInterval.D(); got != 5*time.Second {
		t.Errorf("scrape interval = %s, want the embedded job's 5s", got)
	}
	if c.Checks[1].Floor == nil || *c.Checks[1].Floor != 500 {
		t.Errorf("floor = %v", c.Checks[1].Floor)
	}
	if c.Target.Command.Timeouts.Rollback.D() != 2*time.Minute || c.Target.Command.Timeouts.Deploy.D() != 10*time.Minute {
		t.Errorf("a partial timeouts block must keep the other defaults: %+v", c.Target.Command.Timeouts)
	}
}

func TestDefaultChecksUseTheStatusLabel(t *testing.T) {
	src := strings.Replace(read(t, "testdata/issue.good.yaml"), `selector: 'job="api"'`, "selector: 'job=\"api\"'\n  status_label: code", 1)
	c, err := Load([]byte(src), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Checks[0].Bad, `code=~"5.."`) {
		t.Errorf("bad query %q ignores status_label", c.Checks[0].Bad)
	}
}

func TestBadFiles(t *testing.T) {
	cases := map[string][]string{
		"unknown-key":      {"unknown-key.bad.yaml:9:5: metrics.prometheus.urll: unknown field"},
		"duplicate-key":    {"duplicate-key.bad.yaml:10:1: service: duplicate key (first set on line 1)"},
		"bad-duration":     {"bad-duration.bad.yaml:10:12: phases.monitor: \"5 minutes\" is not a duration"},
		"bad-promql":       {"bad-promql.bad.yaml:11:12: checks[0].query: PromQL", "unclosed left parenthesis"},
		"unknown-var":      {"unknown-var.bad.yaml:11:12: checks[0].query: unknown variable $windw (known: $deployment, $environment, $namespace, $pod_template_hash, $pods, $selector, $service, $since_deploy, $since_warmup, $version, $window, $workload)"},
		"bad-rule":         {"bad-rule.bad.yaml:12:11: checks[0].fail: rule \"above 1%\" must start with"},
		"missing-rollback": {"missing-rollback.bad.yaml:4:5: target.command.rollback: required when on_failure is rollback"},
		"many-problems": {
			"many-problems.bad.yaml:1:10: service: \"my api\"",
			"many-problems.bad.yaml:7:10: metrics.prometheus.url: \"prometheus:9090\"",
			"many-problems.bad.yaml:8:13: metrics.selector",
			"many-problems.bad.yaml:11:12: phases.monitor: 5s is shorter than one interval (10s)",
			"many-problems.bad.yaml:12:13: on_failure: \"revert\"",
		},
		"no-metrics":    {"no-metrics.bad.yaml:1:1: metrics: required with a command target"},
		"wrong-type":    {"wrong-type.bad.yaml:8:14: cannot read `lots` into int"},
		"ratio-fields":  {"checks[0].query: does not belong to a ratio check", "checks[0].total: required for a ratio check", "checks[1].name: \"errors\" is used by another check", "checks[1].fail: a quantile check fails upward"},
		"secret-in-url": {"metrics.prometheus.url: credentials do not belong in the URL"},
		"empty":         {"empty.bad.yaml: the file is empty"},
		"judge": {"judge.bad.yaml:9:17: metrics.query_budget: must be a number of queries a second", "judge.bad.yaml:11:18: judge.failure_limit: must be at least 1 (or 0, or left out, for the sequential test)",
			"judge.bad.yaml:18:11: checks[0].mode: \"dry-run\": want enforce or report"},
		"signin": {"signin.bad.yaml:9:7: metrics.prometheus.sigv4: choose one sign-in: sigv4 and oauth2 are both set",
			"metrics.prometheus.sigv4.region: required", "metrics.prometheus.sigv4.role_arn: \"deploywatch-reader\" is not a role ARN",
			"metrics.prometheus.oauth2.token_url: \"auth.example.com/token\": want http(s)://host/path", "metrics.prometheus.oauth2.client_id: required",
			"metrics.prometheus.oauth2.client_secret_env: \"not a name\" is not an environment variable name",
			"metrics.prometheus.tls: cert_file and key_file go together"},
		"datadog": {"datadog.bad.yaml:7:11: metrics.datadog.site: \"datadog.eu\" is not a Datadog site", "metrics.datadog.app_key_env: set one of app_key_env or app_key_file",
			"checks[0].query: Datadog query: \"sum:trace.http.request.errors{service:api,version:v1}.as_count()\" does not end with the time it covers in brackets",
			"checks[1].bad: a ratio check needs counts: end the Datadog query with .as_count()", "checks[2].type: Datadog gives no histogram buckets"},
		"two-sources": {"two-sources.bad.yaml:9:5: metrics.embedded: choose one metric source"},
		"notify": {"notify.bad.yaml:10:12: notify[0].slack.webhook_url_env: required", "notify[1].datadog.site: \"datadog.com\" is not a Datadog site",
			"notify[2]: each entry names exactly one sink", "notify[2]: event \"deployed\""},
	}
	for name, wants := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name+".bad.yaml")
			_, err := LoadFile(path)
			if err == nil {
				t.Fatal("loaded without error")
			}
			msg := strings.ReplaceAll(err.Error(), "testdata/", "")
			for _, want := range wants {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not contain %q:\n%s", want, msg)
				}
			}
		})
	}
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(files) != len(cases) {
		t.Errorf("%d bad fixtures but %d cases: every fixture needs its expected message", len(files), len(cases))
	}
}

func TestEffectiveConfigRoundTrips(t *testing.T) {
	c, err := LoadFile("testdata/issue.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Load(out, "effective.yaml")
	if err != nil {
		t.Fatalf("the effective config does not load again: %v\n%s", err, out)
	}
	if len(again.Checks) != len(c.Checks) || again.Checks[1].Fail.String() != "> 2x baseline" {
		t.Errorf("round trip changed the checks:\n%s", out)
	}
}

func TestSecretsComeFromEnvAndFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("tok-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := read(t, "testdata/issue.good.yaml")
	withEnv := strings.Replace(base, "url: http://127.0.0.1:9090", "url: http://127.0.0.1:9090\n    bearer_token_env: DW_TEST_TOKEN", 1)
	c, err := Load([]byte(withEnv), filepath.Join(dir, "dw.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c.PrometheusCredentials(nil); err == nil || !strings.Contains(err.Error(), "DW_TEST_TOKEN is not set") || !strings.Contains(err.Error(), "dw.yaml:12:23") {
		t.Errorf("err = %v, want the variable and its position", err)
	}
	t.Setenv("DW_TEST_TOKEN", "tok-from-env")
	if tok, _, _, err := c.PrometheusCredentials(nil); err != nil || tok != "tok-from-env" {
		t.Errorf("token = %q, %v", tok, err)
	}
	withFile := strings.Replace(base, "url: http://127.0.0.1:9090", "url: http://127.0.0.1:9090\n    bearer_token_file: token", 1)
	c, err = Load([]byte(withFile), filepath.Join(dir, "dw.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if tok, _, _, err := c.PrometheusCredentials(nil); err != nil || tok != "tok-from-file" {
		t.Errorf("token = %q, %v", tok, err)
	}
}

func TestExpand(t *testing.T) {
	v := Vars{Selector: `job="api"`, Window: 4 * time.Second, SinceDeploy: 61500 * time.Millisecond, SinceWarmup: 0}
	cases := []struct{ in, want, err string }{
		{in: `sum(rate(x{$selector}[$window]))`, want: `sum(rate(x{job="api"}[4s]))`},
		{in: `increase(x[${since_deploy}])`, want: `increase(x[62s])`},
		{in: `increase(x[$since_warmup])`, want: `increase(x[1s])`},
		{in: `x{path=~"/api/.*$"}`, want: `x{path=~"/api/.*$"}`},
		{in: `label_replace(x, "a", "$$1", "b", "(.*)")`, want: `label_replace(x, "a", "$1", "b", "(.*)")`},
		{in: `x[$nope]`, err: "unknown variable $nope"},
		{in: `x[${window]`, err: "unclosed"},
	}
	for _, c := range cases {
		got, err := Expand(c.in, v)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Expand(%q) err = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDurationsTakeDays(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true},
		{"90d", 90 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"7d30m", 7*24*time.Hour + 30*time.Minute, true},
		{"0d", 0, true},
		{"d", 0, false},
		{"-1d", 0, false},
		{"1.5d", 0, false},
		{"1d-1h", 0, false},
		{"99999999d", 0, false},
		{"2 days", 0, false},
	}
	for _, c := range cases {
		got, err := ParseDuration(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseDuration(%q) = %s, %v; want %s ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
	for d, want := range map[time.Duration]string{90 * 24 * time.Hour: "90d", 36 * time.Hour: "36h", 5 * time.Minute: "5m", 0: "0s"} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%s) = %q, want %q", d, got, want)
		}
	}
	c, err := Load([]byte(strings.Replace(issueYAML(t), "monitor: 40s", "monitor: 1d", 1)), "deploywatch.yaml")
	if err != nil || c.Phases.Monitor.D() != 24*time.Hour {
		t.Fatalf("a config with monitor: 1d: %v, %v", c, err)
	}
}

func issueYAML(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/issue.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheckTest(t *testing.T) {
	cases := []struct {
		name  string
		check Check
		want  judge.Test
		fails int
	}{
		{"a ratio since the warm-up is sequential", Check{Type: TypeRatio, Bad: "sum(increase(e[$since_warmup]))", Total: "sum(increase(r[$since_warmup]))"}, judge.Sequential, 1},
		{"a quantile since the deploy is sequential", Check{Type: TypeQuantile, Histogram: "sum by (le) (increase(h[${since_deploy}]))"}, judge.Sequential, 1},
		{"a ratio over the sliding window spends alpha", Check{Type: TypeRatio, Bad: "sum(increase(e[$window]))", Total: "sum(increase(r[$since_warmup]))"}, judge.Spent, 1},
		{"a ratio over a fixed range spends alpha", Check{Type: TypeRatio, Bad: "sum(increase(e[5m]))", Total: "sum(increase(r[5m]))"}, judge.Spent, 1},
		{"a plain query needs two failing looks", Check{Type: TypeQuery, Query: "max(x[$since_warmup])"}, judge.Spent, 2},
		{"a failure limit keeps the per-look test", Check{Type: TypeRatio, Bad: "e[$since_warmup]", Total: "r[$since_warmup]", FailureLimit: 3}, judge.PerLook, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.check.Test(); got != c.want {
				t.Errorf("test = %s, want %s", got, c.want)
			}
			if got := c.check.Failures(); got != c.fails {
				t.Errorf("failures = %d, want %d", got, c.fails)
			}
		})
	}
}

func TestDatadogDefaultChecks(t *testing.T) {
	c, err := LoadFile("testdata/datadog.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := c.Metrics
	if m.Language() != LanguageDatadog || m.Selector != "service:$service,env:$environment,version:$version" || m.ScrapeInterval.D() != DatadogFlushInterval || *m.QueryBudget != 0 {
		t.Fatalf("metrics %+v", m)
	}
	v := Vars{Selector: m.Selector, Window: 10 * time.Second, SinceWarmup: 42 * time.Second, Service: "api", Environment: "prod", Version: "v2"}
	want := map[string]string{
		"error_rate/bad":     "sum:trace.http.request.errors{service:api,env:prod,version:v2}.as_count()[42s]",
		"error_rate/total":   "sum:trace.http.request.hits{service:api,env:prod,version:v2}.as_count()[42s]",
		"latency_p99/query":  "p99:trace.http.request{service:api,env:prod,version:v2}[42s]",
		"request_rate/count": "sum:trace.http.request.hits{service:api,env:prod,version:v2}.as_count()[10s]",
	}
	got := map[string]string{}
	for _, ch := range c.Checks {
		for role, tmpl := range ch.Queries() {
			got[ch.Name+"/"+role], err = Expand(tmpl, v)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("queries %v", got)
	}
	if !c.Checks[0].Accumulates() || c.Checks[0].Test() != judge.Sequential {
		t.Error("the error counts since the warm-up should get the sequential test, as with Prometheus")
	}
}
