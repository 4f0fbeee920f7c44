package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/jq"
	"github.com/deploywatch/deploywatch/internal/metrics"
	"github.com/deploywatch/deploywatch/internal/promql"
)

var (
	nameRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	checkNameRE  = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	labelRE      = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	envRE        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelValueRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
)

// pos returns where a field was written, or where its nearest written
// parent was.
func (c *Config) pos(field string) position { return lookupPos(c.positions, field) }

func lookupPos(positions map[string]position, field string) position {
	for f := field; ; {
		if p, ok := positions[f]; ok {
			return p
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			return positions[""]
		}
		f = f[:i]
	}
}

func (c *Config) validate(p *Problems) {
	bad := func(field, format string, args ...any) { p.add(c.pos(field), field, format, args...) }

	switch {
	case c.Service == "":
		bad("service", "required: the name of what is deployed, e.g. service: api")
	case !nameRE.MatchString(c.Service):
		bad("service", "%q: use letters, digits, '.', '_' and '-'", c.Service)
	}
	if c.Environment != "" && !nameRE.MatchString(c.Environment) {
		bad("environment", "%q: use letters, digits, '.', '_' and '-'", c.Environment)
	}
	for field, pol := range map[string]Policy{"on_failure": c.OnFailure, "on_inconclusive": c.OnInconclusive} {
		if pol != PolicyRollback && pol != PolicyPause && pol != PolicyNotify {
			bad(field, "%q: want rollback, pause or notify", pol)
		}
	}
	c.validateTarget(bad)
	c.validateVerify(bad)
	c.validateNotify(bad)
	c.validateGenerate(bad)
	c.validatePhases(bad)
	c.validateJudge(bad)
	c.validateTraffic(bad)
	if c.Metrics == nil {
		if c.Target.Command != nil && c.Target.Kubernetes == nil {
			bad("metrics", "required with a command target: a command target cannot judge a deploy without metrics (set metrics.prometheus.url and metrics.selector)")
		}
		if len(c.Checks) > 0 {
			bad("checks", "checks need a metrics section")
		}
		return
	}
	selectorOK := c.validateMetrics(bad)
	names := map[string]bool{}
	for i := range c.Checks {
		c.validateCheck(i, names, selectorOK, bad)
	}
}

type badFunc func(field, format string, args ...any)

func (c *Config) validateTarget(bad badFunc) {
	switch {
	case c.Target.Command != nil && c.Target.Kubernetes != nil:
		bad("target.kubernetes", "choose one target: target.command or target.kubernetes")
		return
	case c.Target.Kubernetes != nil:
		c.validateKubernetes(bad)
		return
	}
	cmd := c.Target.Command
	if cmd == nil {
		bad("target", "required: say how the deploy is made and undone, e.g. target.command (deploy and rollback commands) or target.kubernetes (namespace and deployment)")
		return
	}
	if cmd.Rollback == "" && c.OnFailure == PolicyRollback {
		bad("target.command.rollback", "required when on_failure is rollback (or set on_failure: pause or notify)")
	}
	if cmd.Shell == "" {
		bad("target.command.shell", "must not be empty")
	}
	if cmd.CPUCores < 0 {
		bad("target.command.cpu_cores", "must be positive")
	}
	if cmd.MemoryLimit < 0 {
		bad("target.command.memory_limit", "must be positive")
	}
	cmd.Timeouts.validate(bad, "target.command.timeouts")
}

func (c *Config) validateVerify(bad badFunc) {
	v := c.Verify
	if v == nil {
		return
	}
	if v.BaseURL != "" {
		if u, err := url.Parse(v.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("verify.base_url", "%q: want http(s)://host[:port][/prefix]", v.BaseURL)
		}
	}
	for field, ref := range map[string]string{"verify.ready_url": v.ReadyURL, "verify.info_url": v.InfoURL} {
		if ref != "" && v.BaseURL == "" && !strings.HasPrefix(ref, "http://") && !strings.HasPrefix(ref, "https://") {
			bad(field, "%q is relative: set verify.base_url", ref)
		}
	}
	if v.Smoke != "" && v.BaseURL == "" {
		bad("verify.smoke", "set verify.base_url for the suite's requests")
	}
	if _, err := jq.Compile(v.VersionField); err != nil {
		bad("verify.version_field", "jq %q: %v", v.VersionField, err)
	}
	if v.Settle < 0 {
		bad("verify.settle", "must not be negative")
	}
	if l := v.Logs; l != nil {
		if l.Command == "" && c.Target.Kubernetes == nil {
			bad("verify.logs.command", "required on a non-Kubernetes target: the command that prints the logs")
		}
		for i, p := range l.Patterns {
			if _, err := regexp.Compile(p); err != nil {
				bad(fmt.Sprintf("verify.logs.patterns[%d]", i), "%v", err)
			}
		}
		if l.Window <= 0 {
			bad("verify.logs.window", "must be positive")
		}
	}
}

func (c *Config) validateGenerate(bad badFunc) {
	if c.Alerts.For < 0 {
		bad("alerts.for", "must not be negative")
	}
	if c.Alerts.Window.D() < time.Minute {
		bad("alerts.window", "at least 1m: alerts look at minutes, not scrapes")
	}
	if c.Alerts.SLO != 0 && (c.Alerts.SLO <= 0.5 || c.Alerts.SLO >= 1) {
		bad("alerts.slo", "%g: want an objective such as 99.9%%", float64(c.Alerts.SLO))
	}
	if c.Alerts.RunbookURL != "" {
		if u, err := url.Parse(c.Alerts.RunbookURL); err != nil || u.Host == "" {
			bad("alerts.runbook_url", "%q is not a URL", c.Alerts.RunbookURL)
		}
	}
	for i, p := range c.Dashboard.Business {
		if p.Title == "" {
			bad(fmt.Sprintf("dashboard.business[%d].title", i), "required")
		}
		if err := promql.Check(strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m").Replace(p.Query)); err != nil {
			bad(fmt.Sprintf("dashboard.business[%d].query", i), "PromQL: %v", err)
		}
	}
}

var datadogSites = map[string]bool{"datadoghq.com": true, "us3.datadoghq.com": true, "us5.datadoghq.com": true,
	"datadoghq.eu": true, "ap1.datadoghq.com": true, "ddog-gov.com": true}

func (c *Config) validateNotify(bad badFunc) {
	httpURL := func(field, u string) {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad(field, "%q: want http(s)://host[:port][/path]", u)
		} else if p.User != nil {
			bad(field, "credentials do not belong in the URL: use the *_env or *_file setting")
		}
	}
	secret := func(field, env, file string, required bool) {
		switch {
		case env != "" && file != "":
			bad(field+"_file", "set %s_env or %s_file, not both", field[strings.LastIndex(field, ".")+1:], field[strings.LastIndex(field, ".")+1:])
		case env != "" && !envRE.MatchString(env):
			bad(field+"_env", "%q is not an environment variable name", env)
		case required && env == "" && file == "":
			bad(field+"_env", "required: the environment variable that holds the secret")
		}
	}
	if c.DashboardURL != "" {
		httpURL("dashboard_url", c.DashboardURL)
	}
	for i, n := range c.Notify {
		at := func(f string) string { return fmt.Sprintf("notify[%d].%s", i, f) }
		set := 0
		var events []string
		if s := n.Slack; s != nil {
			set++
			secret(at("slack.webhook_url"), s.WebhookURLEnv, s.WebhookURLFile, true)
			events = append(events, s.Events...)
		}
		if g := n.Grafana; g != nil {
			set++
			httpURL(at("grafana.url"), g.URL)
			secret(at("grafana.token"), g.TokenEnv, g.TokenFile, true)
			events = append(events, g.Events...)
		}
		if d := n.Datadog; d != nil {
			set++
			secret(at("datadog.api_key"), d.APIKeyEnv, d.APIKeyFile, true)
			switch {
			case d.URL != "" && d.Site != "":
				bad(at("datadog.url"), "set site or url, not both")
			case d.URL != "":
				httpURL(at("datadog.url"), d.URL)
			case d.Site != "" && !datadogSites[d.Site]:
				bad(at("datadog.site"), "%q is not a Datadog site (datadoghq.com, us3.datadoghq.com, us5.datadoghq.com, datadoghq.eu, ap1.datadoghq.com, ddog-gov.com)", d.Site)
			}
			events = append(events, d.Events...)
		}
		if w := n.Webhook; w != nil {
			set++
			httpURL(at("webhook.url"), w.URL)
			secret(at("webhook.secret"), w.SecretEnv, w.SecretFile, false)
			events = append(events, w.Events...)
		}
		if set != 1 {
			bad(fmt.Sprintf("notify[%d]", i), "each entry names exactly one sink: slack, grafana, datadog or webhook")
		}
		for _, e := range events {
			if _, err := event.ParseDeliverable(e); err != nil {
				bad(fmt.Sprintf("notify[%d]", i), "%v", err)
			}
		}
	}
}

var (
	dnsLabelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
)

func (c *Config) validateKubernetes(bad badFunc) {
	k := c.Target.Kubernetes
	if !dnsLabelRE.MatchString(k.Namespace) || len(k.Namespace) > 63 {
		bad("target.kubernetes.namespace", "%q is not a namespace name", k.Namespace)
	}
	var set []string
	for _, w := range []struct{ field, kind, name string }{
		{"deployment", KindDeployment, k.Deployment},
		{"statefulset", KindStatefulSet, k.StatefulSet},
		{"daemonset", KindDaemonSet, k.DaemonSet},
	} {
		if w.name == "" {
			continue
		}
		set = append(set, w.field)
		if len(w.name) > 253 || !dnsSubdomainRE.MatchString(w.name) {
			bad("target.kubernetes."+w.field, "%q is not a %s name", w.name, w.kind)
		}
	}
	switch len(set) {
	case 0:
		bad("target.kubernetes.deployment", "required: the workload to watch (deployment, statefulset or daemonset)")
	case 1:
	default:
		bad("target.kubernetes."+set[1], "watch one workload per config: %s and %s are both set", set[0], set[1])
	}
	if k.RestartLimit < 0 {
		bad("target.kubernetes.restart_limit", "must not be negative")
	}
	if k.NotReadyGrace <= 0 {
		bad("target.kubernetes.not_ready_grace", "must be positive")
	}
	if k.GitOps != GitOpsRespect && k.GitOps != GitOpsIgnore {
		bad("target.kubernetes.gitops", "%q: want respect or ignore", k.GitOps)
	}
	if k.Shell == "" {
		bad("target.kubernetes.shell", "must not be empty")
	}
	k.Timeouts.validate(bad, "target.kubernetes.timeouts")
}

// validate says which hook timeouts are not positive.
func (h HookTimeouts) validate(bad badFunc, at string) {
	for field, d := range map[string]Duration{
		"deploy": h.Deploy, "rollback": h.Rollback, "status": h.Status, "current": h.Current, "pause": h.Pause,
	} {
		if d <= 0 {
			bad(at+"."+field, "must be positive")
		}
	}
}

func (c *Config) validatePhases(bad badFunc) {
	ph := c.Phases
	if ph.Interval.D() < 100*time.Millisecond {
		bad("phases.interval", "%s is too short: at least 100ms", FormatDuration(ph.Interval.D()))
	}
	if ph.Monitor < ph.Interval {
		bad("phases.monitor", "%s is shorter than one interval (%s)", FormatDuration(ph.Monitor.D()), FormatDuration(ph.Interval.D()))
	}
	if ph.Rollout <= 0 {
		bad("phases.rollout", "must be positive")
	}
	if ph.Verify <= 0 {
		bad("phases.verify", "must be positive")
	}
	if c.Baseline.Window.D() < time.Second {
		bad("baseline.window", "must be at least 1s")
	}
	if c.Baseline.Offset < 0 {
		bad("baseline.offset", "must not be negative: it moves the baseline window back in time")
	}
}

func (c *Config) validateTraffic(bad badFunc) {
	t := c.Traffic
	if t == nil {
		return
	}
	if !(t.Rate > 0 && t.Rate <= 1000) {
		bad("traffic.rate", "must be more than 0 and at most 1000 requests a second")
	}
	if t.MaxRequests < 0 {
		bad("traffic.max_requests", "must be positive")
	}
	if t.Concurrency < 0 || t.Concurrency > 100 {
		bad("traffic.concurrency", "must be between 1 and 100")
	}
	if !headerRE.MatchString(t.Header) {
		bad("traffic.header", "%q is not a header name", t.Header)
	}
	if c.Verify == nil || c.Verify.Smoke == "" {
		bad("traffic", "needs verify.smoke (and verify.base_url): the synthetic requests are the smoke suite's")
	}
}

var headerRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

func (c *Config) validateJudge(bad badFunc) {
	j := c.Judge
	if j.FailureLimit < 0 {
		bad("judge.failure_limit", "must be at least 1 (or 0, or left out, for the sequential test)")
	}
	if j.ErrorLimit < 1 {
		bad("judge.error_limit", "must be at least 1")
	}
	if j.Confidence < 0.5 || j.Confidence >= 1 {
		bad("judge.confidence", "%g: want a probability in [0.5, 1), e.g. 0.99", j.Confidence)
	}
	if j.Tolerance < 0 {
		bad("judge.tolerance", "must not be negative")
	}
	if j.MinRequests < 0 {
		bad("judge.min_requests", "must not be negative")
	}
}

// samplePlatformVars stand for the platform's variables when queries are
// parsed at load time: any value that makes a valid label value will do.
var samplePlatformVars = map[string]string{
	VarNamespace: "ns", VarDeployment: "api", VarWorkload: "api", VarPodTemplateHash: "h", VarPods: "api-0",
}

// validateMetrics reports whether the selector is usable: without it
// every query would repeat the same error.
func (c *Config) validateMetrics(bad badFunc) (selectorOK bool) {
	m := c.Metrics
	if b := m.QueryBudget; b != nil && (*b < 0 || math.IsNaN(*b) || math.IsInf(*b, 0)) {
		bad("metrics.query_budget", "must be a number of queries a second, 0 or more (0: look every phases.interval only)")
	}
	sources := m.Sources()
	switch {
	case len(sources) > 1:
		bad(sources[1], "choose one metric source: %s are both set", strings.Join(sources, " and "))
	case m.Embedded != nil:
		c.validateEmbedded(bad)
	case m.Datadog != nil:
		c.validateDatadog(bad)
	case m.Command != nil:
		c.validateCommandSource(bad)
	case m.HTTP != nil:
		c.validateHTTPSource(bad)
	case m.Prometheus == nil:
		bad("metrics", "no metric source: set metrics.prometheus.url, or metrics.embedded to scrape the service directly (or metrics.datadog, metrics.command, metrics.http)")
	default:
		pr := m.Prometheus
		u, err := url.Parse(pr.URL)
		switch {
		case pr.URL == "":
			bad("metrics.prometheus.url", "required, e.g. http://prometheus:9090")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad("metrics.prometheus.url", "%q: want http(s)://host[:port][/prefix]", pr.URL)
		case u.User != nil:
			bad("metrics.prometheus.url", "credentials do not belong in the URL: use basic_auth with password_env or password_file")
		}
		if pr.BearerTokenEnv != "" && pr.BearerTokenFile != "" {
			bad("metrics.prometheus.bearer_token_file", "set bearer_token_env or bearer_token_file, not both")
		}
		if pr.BearerTokenEnv != "" && !envRE.MatchString(pr.BearerTokenEnv) {
			bad("metrics.prometheus.bearer_token_env", "%q is not an environment variable name", pr.BearerTokenEnv)
		}
		if ba := pr.BasicAuth; ba != nil {
			if ba.Username == "" {
				bad("metrics.prometheus.basic_auth.username", "required")
			}
			if (ba.PasswordEnv == "") == (ba.PasswordFile == "") {
				bad("metrics.prometheus.basic_auth", "set one of password_env or password_file")
			}
			if pr.BearerTokenEnv != "" || pr.BearerTokenFile != "" {
				bad("metrics.prometheus.basic_auth", "use basic_auth or a bearer token, not both")
			}
		}
		if pr.Timeout <= 0 {
			bad("metrics.prometheus.timeout", "must be positive")
		}
		if pr.Retries < 0 || pr.Retries > 10 {
			bad("metrics.prometheus.retries", "%d: want 0 to 10", pr.Retries)
		}
		for k := range pr.Headers {
			if strings.EqualFold(k, "Authorization") {
				bad("metrics.prometheus.headers."+k, "credentials do not belong in headers: use bearer_token_env, bearer_token_file or basic_auth")
			}
		}
		validateSignIn(pr, bad)
	}
	if m.Language() != LanguagePromQL {
		return c.validateOtherLanguage(bad)
	}
	selectorOK = true
	if m.Selector == "" {
		bad("metrics.selector", `required: the label selector of the service's series, e.g. 'job="api"'`)
		selectorOK = false
	} else if sel, err := ExpandSelector(m.Selector, samplePlatformVars); err != nil {
		bad("metrics.selector", "%v", err)
		selectorOK = false
	} else if err := promql.CheckSelector(sel); err != nil {
		bad("metrics.selector", "%v", err)
		selectorOK = false
	}
	if ctl := c.Baseline.Control; ctl != "" {
		if sel, err := ExpandSelector(ctl, samplePlatformVars); err != nil {
			bad("baseline.control", "%v", err)
		} else if err := promql.CheckSelector(sel); err != nil {
			bad("baseline.control", "%v", err)
		} else if ctl == m.Selector {
			bad("baseline.control", "is metrics.selector itself: the control group must be instances the deploy does not change")
		}
	}
	if !labelRE.MatchString(m.StatusLabel) {
		bad("metrics.status_label", "%q is not a label name", m.StatusLabel)
	}
	if _, err := regexp.Compile("^(?:" + m.ErrorStatus + ")$"); err != nil || m.ErrorStatus == "" {
		bad("metrics.error_status", "%q is not a regular expression", m.ErrorStatus)
	}
	if m.ScrapeInterval != 0 && m.ScrapeInterval.D() < 100*time.Millisecond {
		bad("metrics.scrape_interval", "must be at least 100ms")
	}
	if m.Window != 0 && m.Window.D() < time.Second {
		bad("metrics.window", "must be at least 1s")
	}
	return selectorOK
}

func (c *Config) validateEmbedded(bad badFunc) {
	e := c.Metrics.Embedded
	if len(e.Scrape) == 0 {
		bad("metrics.embedded.scrape", "required: the jobs to scrape, e.g. - job: api, targets: [\"127.0.0.1:8000\"]")
	}
	jobs := map[string]bool{}
	for i, j := range e.Scrape {
		at := func(f string) string { return fmt.Sprintf("metrics.embedded.scrape[%d].%s", i, f) }
		switch {
		case !labelValueRE.MatchString(j.Job):
			bad(at("job"), "%q: want a job name such as api", j.Job)
		case jobs[j.Job]:
			bad(at("job"), "%q is scraped twice", j.Job)
		}
		jobs[j.Job] = true
		if len(j.Targets) == 0 {
			bad(at("targets"), "required: host:port of each instance")
		}
		for k, t := range j.Targets {
			if _, port, err := net.SplitHostPort(t); err != nil || port == "" {
				bad(fmt.Sprintf("metrics.embedded.scrape[%d].targets[%d]", i, k), "%q: want host:port", t)
			}
		}
		if j.Interval.D() < 100*time.Millisecond {
			bad(at("interval"), "must be at least 100ms")
		}
		if j.Timeout > j.Interval {
			bad(at("timeout"), "longer than the interval")
		}
		if j.Scheme != "http" && j.Scheme != "https" {
			bad(at("scheme"), "%q: want http or https", j.Scheme)
		}
		if !strings.HasPrefix(j.Path, "/") {
			bad(at("path"), "%q: want an absolute path such as /metrics", j.Path)
		}
	}
	if need := c.Baseline.Window + c.Phases.Rollout + c.Phases.Monitor; e.Retention < need {
		bad("metrics.embedded.retention", "%s is shorter than baseline, rollout and monitor together (%s)",
			FormatDuration(e.Retention.D()), FormatDuration(need.D()))
	}
}

var units = map[string]bool{"": true, "percent": true, "seconds": true, "bytes": true, "persecond": true}

func (c *Config) validateCheck(i int, names map[string]bool, checkQueries bool, bad badFunc) {
	ch := &c.Checks[i]
	at := func(f string) string { return fmt.Sprintf("checks[%d].%s", i, f) }
	switch {
	case ch.Name == "":
		bad(at("name"), "required")
	case !checkNameRE.MatchString(ch.Name):
		bad(at("name"), "%q: use lower-case letters, digits and _", ch.Name)
	case names[ch.Name]:
		bad(at("name"), "%q is used by another check", ch.Name)
	case ch.Name == "pods":
		bad(at("name"), `"pods" is the name of the platform's health check: choose another`)
	}
	names[ch.Name] = true

	need := map[string][]string{
		TypeQuery:    {"query"},
		TypeRatio:    {"bad", "total"},
		TypeQuantile: {"histogram"},
		TypeRate:     {"count"},
	}
	want, ok := need[ch.Type]
	if !ok {
		bad(at("type"), "%q: want query, ratio, quantile or rate", ch.Type)
		return
	}
	queries := ch.Queries()
	for _, role := range want {
		if _, ok := queries[role]; !ok {
			bad(at(role), "required for a %s check", ch.Type)
		}
	}
	for role := range queries {
		if !slices.Contains(want, role) {
			bad(at(role), "does not belong to a %s check (it uses %s)", ch.Type, strings.Join(want, " and "))
		}
	}
	vars := Vars{Selector: c.Metrics.Selector, Window: time.Minute, SinceDeploy: time.Minute, SinceWarmup: time.Minute, Platform: samplePlatformVars,
		Service: "api", Environment: "prod", Version: "v1"}
	for role, tmpl := range queries {
		if !checkQueries {
			break
		}
		expr, err := Expand(tmpl, vars)
		if err != nil {
			bad(at(role), "%v", err)
			continue
		}
		switch c.Metrics.Language() {
		case LanguagePromQL:
			if err := promql.Check(expr); err != nil {
				bad(at(role), "PromQL %q: %v", expr, err)
			}
		case LanguageDatadog:
			q, _, err := metrics.SplitRange(expr)
			switch {
			case err != nil:
				bad(at(role), "Datadog query: %v", err)
			case ch.Type != TypeQuery && !strings.HasSuffix(q, ".as_count()"):
				bad(at(role), "a %s check needs counts: end the Datadog query with .as_count() before its range, e.g. sum:trace.http.request.hits{$selector}.as_count()[$window]", ch.Type)
			}
		}
	}
	if c.Metrics.Language() == LanguageDatadog && ch.Type == TypeQuantile {
		bad(at("type"), "Datadog gives no histogram buckets: use type query with a percentile, e.g. p99:trace.http.request{$selector}[$since_warmup]")
	}
	if c.Metrics.Language() == LanguageValues {
		src := c.Metrics.SourceField()
		if ch.Type != TypeQuery {
			bad(at("type"), "%q needs counts, and %s gives one value: use type query (with absolute rules)", ch.Type, src)
		}
		for _, r := range []struct {
			field string
			rule  Rule
		}{{"fail", ch.Fail}, {"warn", ch.Warn}} {
			if r.rule.Relative {
				bad(at(r.field), "%q is relative to a baseline, which %s cannot measure: use an absolute rule such as \"> 1%%\"", r.rule, src)
			}
		}
	}
	if ch.Warn.IsZero() && ch.Fail.IsZero() {
		bad(at("fail"), "a check needs a fail or warn rule, e.g. fail: \"> 1%%\"")
	}
	if !ch.Warn.IsZero() && !ch.Fail.IsZero() && ch.Warn.Op.Upward() != ch.Fail.Op.Upward() {
		bad(at("warn"), "warn %q and fail %q point in opposite directions", ch.Warn, ch.Fail)
	}
	if ch.Type == TypeQuantile {
		if ch.Quantile <= 0 || ch.Quantile >= 1 {
			bad(at("quantile"), "%g: want a quantile between 0 and 1, e.g. 0.99", ch.Quantile)
		}
		if !ch.Fail.IsZero() && !ch.Fail.Op.Upward() {
			bad(at("fail"), "a quantile check fails upward (> or >=)")
		}
	}
	if ch.Floor != nil && !ch.Fail.IsZero() && !ch.Fail.Op.Upward() {
		bad(at("floor"), "a floor bounds an upward (>) fail rule")
	}
	if ch.Window != 0 && ch.Window.D() < time.Second {
		bad(at("window"), "must be at least 1s")
	}
	if ch.FailureLimit < 0 {
		bad(at("failure_limit"), "must be at least 1 (or 0, or left out, for the sequential test)")
	}
	if ch.ErrorLimit < 1 {
		bad(at("error_limit"), "must be at least 1")
	}
	if ch.Confidence < 0.5 || ch.Confidence >= 1 {
		bad(at("confidence"), "%g: want a probability in [0.5, 1)", ch.Confidence)
	}
	if ch.MinRequests < 0 {
		bad(at("min_requests"), "must not be negative")
	}
	if ch.Mode != ModeEnforce && ch.Mode != ModeReport {
		bad(at("mode"), "%q: want enforce or report", ch.Mode)
	}
	if ch.OnNoData != NoDataIgnore && ch.OnNoData != NoDataWarn && ch.OnNoData != NoDataFail {
		bad(at("on_nodata"), "%q: want ignore, warn or fail", ch.OnNoData)
	}
	if !units[ch.Unit] {
		bad(at("unit"), "%q: want percent, seconds, bytes, persecond or nothing", ch.Unit)
	}
}

// validateSignIn checks the shape of the source's sign-in blocks. It looks
// up no credentials: validate works offline, and run and watch fetch them
// at Start.
func validateSignIn(pr *Prometheus, bad badFunc) {
	const at = "metrics.prometheus."
	ways := pr.SignIns()
	if len(ways) > 1 && slices.ContainsFunc(ways[:2], func(w string) bool { return w == "sigv4" || w == "google" || w == "oauth2" }) {
		// (a bearer token with basic_auth is reported on its own)
		bad(at+ways[0], "choose one sign-in: %s are both set", strings.Join(ways, " and "))
	}
	if s := pr.SigV4; s != nil {
		if s.Region == "" {
			bad(at+"sigv4.region", "required: the workspace's AWS region, e.g. us-east-1")
		} else if !awsRegionRE.MatchString(s.Region) {
			bad(at+"sigv4.region", "%q is not an AWS region, e.g. us-east-1", s.Region)
		}
		if s.RoleARN != "" && !strings.HasPrefix(s.RoleARN, "arn:") {
			bad(at+"sigv4.role_arn", "%q is not a role ARN (arn:aws:iam::<account>:role/<name>)", s.RoleARN)
		}
	}
	if o := pr.OAuth2; o != nil {
		u, err := url.Parse(o.TokenURL)
		switch {
		case o.TokenURL == "":
			bad(at+"oauth2.token_url", "required: the token endpoint, e.g. https://auth.example.com/oauth2/token")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad(at+"oauth2.token_url", "%q: want http(s)://host/path", o.TokenURL)
		case u.User != nil:
			bad(at+"oauth2.token_url", "credentials do not belong in the URL: use client_id and client_secret_env")
		}
		if o.ClientID == "" {
			bad(at+"oauth2.client_id", "required")
		}
		if (o.ClientSecretEnv == "") == (o.ClientSecretFile == "") {
			bad(at+"oauth2", "set one of client_secret_env or client_secret_file")
		}
		if o.ClientSecretEnv != "" && !envRE.MatchString(o.ClientSecretEnv) {
			bad(at+"oauth2.client_secret_env", "%q is not an environment variable name", o.ClientSecretEnv)
		}
	}
	if t := pr.TLS; t != nil {
		if (t.CertFile == "") != (t.KeyFile == "") {
			bad(at+"tls", "cert_file and key_file go together: the client certificate needs its key")
		}
		if t.InsecureSkipVerify && t.CAFile != "" {
			bad(at+"tls.insecure_skip_verify", "with ca_file set, the server's certificate can be verified: drop insecure_skip_verify")
		}
	}
}

// awsRegionRE matches AWS region names: us-east-1, eu-central-2,
// us-gov-west-1, cn-north-1.
var awsRegionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)

// validateOtherLanguage checks the selector and control group of a source
// whose queries are not PromQL: they are tags or free text, checked only
// for their variables.
func (c *Config) validateOtherLanguage(bad badFunc) (selectorOK bool) {
	m := c.Metrics
	selectorOK = true
	if _, err := Expand(m.Selector, Vars{Platform: samplePlatformVars}); err != nil {
		bad("metrics.selector", "%v", err)
		selectorOK = false
	}
	if c.Baseline.Control != "" {
		if _, err := Expand(c.Baseline.Control, Vars{Platform: samplePlatformVars}); err != nil {
			bad("baseline.control", "%v", err)
		}
		if m.Language() == LanguageValues {
			bad("baseline.control", "%s gives values, not counts: a control group cannot be compared", m.SourceField())
		}
	}
	if m.Language() == LanguageValues {
		if len(c.Checks) == 0 {
			bad("checks", "required with %s: the default checks are written for Prometheus and Datadog; write checks of type query with absolute rules", m.SourceField())
		}
		if c.Baseline.Offset != 0 {
			bad("baseline.offset", "%s has no history to look back into", m.SourceField())
		}
	}
	if m.ScrapeInterval != 0 && m.ScrapeInterval.D() < 100*time.Millisecond {
		bad("metrics.scrape_interval", "must be at least 100ms")
	}
	if m.Window != 0 && m.Window.D() < time.Second {
		bad("metrics.window", "must be at least 1s")
	}
	return selectorOK
}

func (c *Config) validateDatadog(bad badFunc) {
	d := c.Metrics.Datadog
	const at = "metrics.datadog."
	if d.URL != "" && d.Site != "datadoghq.com" {
		bad(at+"url", "set site or url, not both: url replaces the site's address")
	}
	if d.URL == "" && !datadogSites[d.Site] {
		bad(at+"site", "%q is not a Datadog site (datadoghq.com, us3.datadoghq.com, us5.datadoghq.com, datadoghq.eu, ap1.datadoghq.com, ddog-gov.com)", d.Site)
	}
	if d.URL != "" {
		u, err := url.Parse(d.URL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad(at+"url", "%q: want http(s)://host[:port]", d.URL)
		case u.User != nil:
			bad(at+"url", "credentials do not belong in the URL: use api_key_env and app_key_env")
		}
	}
	for _, k := range []struct{ name, env, file string }{{"api_key", d.APIKeyEnv, d.APIKeyFile}, {"app_key", d.AppKeyEnv, d.AppKeyFile}} {
		switch {
		case (k.env == "") == (k.file == ""):
			bad(at+k.name+"_env", "set one of %s_env or %s_file: the metrics API needs both keys", k.name, k.name)
		case k.env != "" && !envRE.MatchString(k.env):
			bad(at+k.name+"_env", "%q is not an environment variable name", k.env)
		}
	}
	if !checkNameRE.MatchString(strings.ReplaceAll(d.Span, ".", "_")) {
		bad(at+"span", "%q: want a span name such as http.request", d.Span)
	}
	if d.Timeout <= 0 {
		bad(at+"timeout", "must be positive")
	}
	if d.Retries < 0 || d.Retries > 10 {
		bad(at+"retries", "%d: want 0 to 10", d.Retries)
	}
}

func (c *Config) validateCommandSource(bad badFunc) {
	cmd := c.Metrics.Command
	if strings.TrimSpace(cmd.Run) == "" {
		bad("metrics.command.run", "required: the command that prints a check's value, given the query as $1")
	}
	if cmd.Timeout <= 0 {
		bad("metrics.command.timeout", "must be positive")
	}
}

func (c *Config) validateHTTPSource(bad badFunc) {
	h := c.Metrics.HTTP
	const at = "metrics.http."
	u, err := url.Parse(h.URL)
	switch {
	case h.URL == "":
		bad(at+"url", "required: the address asked for each check, e.g. https://metrics.example.com/value")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		bad(at+"url", "%q: want http(s)://host[:port]/path", h.URL)
	case u.User != nil:
		bad(at+"url", "credentials do not belong in the URL: use bearer_token_env")
	}
	if h.BearerTokenEnv != "" && h.BearerTokenFile != "" {
		bad(at+"bearer_token_file", "set bearer_token_env or bearer_token_file, not both")
	}
	if h.BearerTokenEnv != "" && !envRE.MatchString(h.BearerTokenEnv) {
		bad(at+"bearer_token_env", "%q is not an environment variable name", h.BearerTokenEnv)
	}
	for k := range h.Headers {
		if strings.EqualFold(k, "Authorization") {
			bad(at+"headers."+k, "credentials do not belong in headers: use bearer_token_env or bearer_token_file")
		}
	}
	for _, f := range []struct{ name, expr string }{{"value", h.Value}, {"samples", h.Samples}} {
		if f.expr == "" {
			if f.name == "value" {
				bad(at+"value", "required: the jq expression of the value in the answer, e.g. .data.value")
			}
			continue
		}
		if _, err := jq.Compile(f.expr); err != nil {
			bad(at+f.name, "jq %q: %v", f.expr, err)
		}
	}
	if h.Timeout <= 0 {
		bad(at+"timeout", "must be positive")
	}
}
