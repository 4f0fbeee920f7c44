// Package config reads deploywatch.yaml: a strict schema (unknown and
// duplicate keys are errors), defaults from the seed's table, and
// validation that points at the file, line and column of every problem.
// PromQL in the file is parsed at load time, not during a deploy.
package config

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/deploywatch/deploywatch/internal/judge"
)

// Policy is what deploywatch does when a deploy fails or cannot be judged.
type Policy string

// The policies. Rollback returns to the revision recorded at Start; Pause
// leaves the new version in place and runs the pause hook; Notify only
// tells.
const (
	PolicyRollback Policy = "rollback"
	PolicyPause    Policy = "pause"
	PolicyNotify   Policy = "notify"
)

// Check types.
const (
	TypeQuery    = "query"
	TypeRatio    = "ratio"
	TypeQuantile = "quantile"
	TypeRate     = "rate"
)

// What a check does with no data.
const (
	NoDataIgnore = "ignore"
	NoDataWarn   = "warn"
	NoDataFail   = "fail"
)

// What a check's failure does.
const (
	// ModeEnforce: a failing check fails the deploy (the default).
	ModeEnforce = "enforce"
	// ModeReport: the check is measured, shown and stored, and says when
	// it would have failed, but never fails a deploy: the way to try a new
	// check before it may roll anything back.
	ModeReport = "report"
)

// Config is a whole deploywatch.yaml.
type Config struct {
	// Service names what is deployed, e.g. "api".
	Service string `yaml:"service"`
	// Environment names where, e.g. "staging".
	Environment string `yaml:"environment,omitempty"`
	Target      Target `yaml:"target"`
	// Metrics is where measurements come from. Optional for targets that
	// can judge a deploy on their own.
	Metrics  *Metrics `yaml:"metrics,omitempty"`
	Baseline Baseline `yaml:"baseline"`
	Phases   Phases   `yaml:"phases"`
	// OnFailure is the policy for a failed deploy. Default rollback.
	OnFailure Policy `yaml:"on_failure"`
	// OnInconclusive is the policy when the deploy could not be judged.
	// Default notify: the new version stays.
	OnInconclusive Policy `yaml:"on_inconclusive"`
	// Judge holds the defaults every check inherits.
	Judge JudgeDefaults `yaml:"judge"`
	// Checks replace the default checks when present.
	Checks []Check `yaml:"checks,omitempty"`
	// Verify is the post-deploy checklist run in the Verify phase.
	Verify *Verify `yaml:"verify,omitempty"`
	// Traffic sends synthetic requests during the warm-up and the monitor,
	// for a service too quiet to judge from its own traffic.
	Traffic *Traffic `yaml:"traffic,omitempty"`
	// Notify lists where the watch is announced; each entry names one sink.
	Notify []Notify `yaml:"notify,omitempty"`
	// DashboardURL is linked from notifications and alerts.
	DashboardURL string `yaml:"dashboard_url,omitempty"`
	// Alerts tunes `deploywatch generate alerts`.
	Alerts Alerts `yaml:"alerts"`
	// Dashboard tunes `deploywatch generate dashboard`.
	Dashboard Dashboard `yaml:"dashboard"`

	// Skipped lists default checks that cannot run here, and why.
	Skipped []SkippedCheck `yaml:"-"`
	// DefaultChecks is set when the checks are the built-in table, which
	// relies on the conventional request metrics.
	DefaultChecks bool `yaml:"-"`
	// Path is the file the config was read from.
	Path string `yaml:"-"`
	// Digest is the SHA-256 of the bytes it was read from, in hex: a
	// resumed watch is refused when its config changed.
	Digest string `yaml:"-"`
	// Source is the YAML it was read from (merged, for layers): loading it
	// again gives the same config.
	Source []byte `yaml:"-"`
	// positions maps a field path ("checks[0].fail") to where it was written.
	positions map[string]position
}

// Alerts tunes the generated Prometheus alert rules.
type Alerts struct {
	// For is how long a condition must hold before it fires. Default 5m.
	For Duration `yaml:"for"`
	// Window is the range of the rules' rates. Default 5m.
	Window Duration `yaml:"window"`
	// RunbookURL is linked from every alert.
	RunbookURL string `yaml:"runbook_url,omitempty"`
	// SLO, e.g. 99.9%, adds multi-window burn-rate alerts on the error
	// ratio (the Google SRE workbook's 14.4x over 1h/5m and 6x over 6h/30m).
	SLO Quantity `yaml:"slo,omitempty"`
}

// Dashboard tunes the generated Grafana dashboard.
type Dashboard struct {
	// Business panels fill the fourth row (active users, orders per
	// minute, revenue); without them the row explains how to add them.
	Business []BusinessPanel `yaml:"business,omitempty"`
}

// BusinessPanel is one panel of the business row.
type BusinessPanel struct {
	Title string `yaml:"title"`
	Query string `yaml:"query"`
	// Unit is a Grafana unit, e.g. short, currencyUSD, reqps.
	Unit string `yaml:"unit,omitempty"`
}

// Notify is one notification sink: exactly one field is set. Secrets
// (webhook URLs, tokens, keys) come from *_env or *_file.
type Notify struct {
	Slack   *SlackSink   `yaml:"slack,omitempty"`
	Grafana *GrafanaSink `yaml:"grafana,omitempty"`
	Datadog *DatadogSink `yaml:"datadog,omitempty"`
	Webhook *WebhookSink `yaml:"webhook,omitempty"`
}

// SlackSink is an incoming webhook. Default events: started, verdict and
// the rollback's.
type SlackSink struct {
	WebhookURLEnv  string   `yaml:"webhook_url_env,omitempty"`
	WebhookURLFile string   `yaml:"webhook_url_file,omitempty"`
	Events         []string `yaml:"events,omitempty"`
}

// GrafanaSink opens a region annotation at the start and closes it at the
// verdict. URL is Grafana's base address.
type GrafanaSink struct {
	URL          string   `yaml:"url"`
	TokenEnv     string   `yaml:"token_env,omitempty"`
	TokenFile    string   `yaml:"token_file,omitempty"`
	DashboardUID string   `yaml:"dashboard_uid,omitempty"`
	PanelID      int      `yaml:"panel_id,omitempty"`
	Tags         []string `yaml:"tags,omitempty"`
	Events       []string `yaml:"events,omitempty"`
}

// DatadogSink posts events to Datadog's v1 API on Site (default
// datadoghq.com), or to URL (proxies, tests).
type DatadogSink struct {
	APIKeyEnv  string   `yaml:"api_key_env,omitempty"`
	APIKeyFile string   `yaml:"api_key_file,omitempty"`
	Site       string   `yaml:"site,omitempty"`
	URL        string   `yaml:"url,omitempty"`
	Events     []string `yaml:"events,omitempty"`
}

// WebhookSink posts every message as JSON to URL, signed with
// X-Deploywatch-Signature when a secret is set.
type WebhookSink struct {
	URL        string   `yaml:"url"`
	SecretEnv  string   `yaml:"secret_env,omitempty"`
	SecretFile string   `yaml:"secret_file,omitempty"`
	Events     []string `yaml:"events,omitempty"`
}

// Verify is the post-deploy checklist. Each item runs when its inputs are
// configured and is otherwise listed as skipped.
type Verify struct {
	// BaseURL is the service's address, for the smoke suite and relative URLs.
	BaseURL string `yaml:"base_url,omitempty"`
	// ReadyURL must answer 200 (and "ready", if JSON) within Settle.
	ReadyURL string `yaml:"ready_url,omitempty"`
	// InfoURL answers the running version; VersionField (a jq path, default
	// .commit) must equal --version.
	InfoURL      string `yaml:"info_url,omitempty"`
	VersionField string `yaml:"version_field"`
	// Smoke is a smoke suite file, relative to this file.
	Smoke string      `yaml:"smoke,omitempty"`
	Logs  *VerifyLogs `yaml:"logs,omitempty"`
	// Settle is how long the readiness and version items retry while the
	// new version comes up. Default 30s.
	Settle Duration `yaml:"settle"`
}

// Traffic is synthetic traffic: the smoke suite's standalone requests
// (verify.smoke, against verify.base_url), sent at Rate during the warm-up
// and the monitor window, each marked with Header (its value: the version
// watched) so that the service can tell them apart.
type Traffic struct {
	// Rate is requests a second (at most 1000).
	Rate float64 `yaml:"rate"`
	// MaxRequests bounds the requests sent in all. Default: the rate over
	// the warm-up and the monitor window, and a fifth more.
	MaxRequests int64 `yaml:"max_requests,omitempty"`
	// Concurrency bounds the requests in flight. Default 4.
	Concurrency int `yaml:"concurrency,omitempty"`
	// Header marks each request. Default X-Deploywatch-Synthetic.
	Header string `yaml:"header,omitempty"`
}

// VerifyLogs scans logs for new errors.
type VerifyLogs struct {
	// Command prints the logs to scan (non-Kubernetes targets; on
	// Kubernetes the new pods' logs are read). It gets DEPLOYWATCH_LOGS_SINCE
	// and DEPLOYWATCH_LOGS_UNTIL (RFC 3339) to select its window.
	Command string `yaml:"command,omitempty"`
	// Patterns are regular expressions of an error line. Default
	// (?i)\berror\b and panic:.
	Patterns []string `yaml:"patterns,omitempty"`
	// Window is how far before the deploy the comparison looks. Default 5m.
	Window Duration `yaml:"window"`
}

// SkippedCheck is a default check left out, with the reason.
type SkippedCheck struct {
	Name, Reason string
}

// Target is how the deploy is made and undone.
type Target struct {
	Command    *CommandTarget    `yaml:"command,omitempty"`
	Kubernetes *KubernetesTarget `yaml:"kubernetes,omitempty"`
}

// GitOps policies for a Deployment managed by Argo CD or Flux.
const (
	// GitOpsRespect does not undo a managed Deployment (the controller would
	// revert the undo within seconds): it notifies and runs rollback_command.
	GitOpsRespect = "respect"
	// GitOpsIgnore undoes it anyway.
	GitOpsIgnore = "ignore"
)

// KubernetesTarget watches a plain workload in place: one of Deployment,
// StatefulSet or DaemonSet.
type KubernetesTarget struct {
	Namespace   string `yaml:"namespace"`
	Deployment  string `yaml:"deployment,omitempty"`
	StatefulSet string `yaml:"statefulset,omitempty"`
	DaemonSet   string `yaml:"daemonset,omitempty"`
	// Context is the kubeconfig context. Default: the current one.
	Context string `yaml:"context,omitempty"`
	// Kubeconfig is the kubeconfig file. Default: --kubeconfig, $KUBECONFIG,
	// ~/.kube/config, or the in-cluster service account.
	Kubeconfig string `yaml:"kubeconfig,omitempty"`
	// Deploy is the command run uses when no command follows --, e.g.
	// "kubectl apply -f k8s/".
	Deploy string `yaml:"deploy,omitempty"`
	// RestartLimit fails the deploy when a new pod restarts more often than
	// this since the deploy began. Default 2 (the seed's "> 2").
	RestartLimit int `yaml:"restart_limit"`
	// NotReadyGrace is how long a new pod may stay not ready. Default 2m.
	NotReadyGrace Duration `yaml:"not_ready_grace"`
	// GitOps is respect (default: do not undo a Deployment that Argo CD or
	// Flux manages) or ignore.
	GitOps string `yaml:"gitops"`
	// RollbackCommand runs instead of the undo when GitOps is respected,
	// e.g. a git revert of the release commit.
	RollbackCommand string `yaml:"rollback_command,omitempty"`
	// Shell runs Deploy and RollbackCommand. Default /bin/sh.
	Shell    string       `yaml:"shell"`
	Timeouts HookTimeouts `yaml:"timeouts"`
}

// The kinds of workload a Kubernetes target watches.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
)

// Workload is the kind and name of the workload watched: the one of
// deployment, statefulset and daemonset that is set (validation makes sure
// exactly one is).
func (k KubernetesTarget) Workload() (kind, name string) {
	switch {
	case k.StatefulSet != "":
		return KindStatefulSet, k.StatefulSet
	case k.DaemonSet != "":
		return KindDaemonSet, k.DaemonSet
	}
	return KindDeployment, k.Deployment
}

// CommandTarget drives a deploy through shell commands.
type CommandTarget struct {
	// Deploy starts the deploy (used by run when no command follows --).
	Deploy string `yaml:"deploy,omitempty"`
	// Rollback returns to the previous version. It gets DEPLOYWATCH_SERVICE,
	// DEPLOYWATCH_VERSION and DEPLOYWATCH_PREVIOUS_VERSION.
	Rollback string `yaml:"rollback,omitempty"`
	// Status exits 0 once the new version is fully out.
	Status string `yaml:"status,omitempty"`
	// Current prints the running version; it is recorded at Start.
	Current string `yaml:"current,omitempty"`
	// Pause runs for on_failure: pause.
	Pause string `yaml:"pause,omitempty"`
	// Shell runs the commands, as Shell -c COMMAND. Default /bin/sh.
	Shell string `yaml:"shell"`
	// Dir is the working directory, relative to the config file. Default:
	// the directory deploywatch runs in.
	Dir      string       `yaml:"dir,omitempty"`
	Timeouts HookTimeouts `yaml:"timeouts"`
	// CPUCores is the CPU the service may use; with it the cpu check runs.
	CPUCores float64 `yaml:"cpu_cores,omitempty"`
	// MemoryLimit is the memory the service may use, e.g. 512Mi; with it
	// the memory check runs.
	MemoryLimit Quantity `yaml:"memory_limit,omitempty"`
}

// HookTimeouts bound each hook.
type HookTimeouts struct {
	Deploy   Duration `yaml:"deploy"`
	Rollback Duration `yaml:"rollback"`
	Status   Duration `yaml:"status"`
	Current  Duration `yaml:"current"`
	Pause    Duration `yaml:"pause"`
}

// Metrics configures the metric source and the conventions of the default
// checks.
type Metrics struct {
	Prometheus *Prometheus `yaml:"prometheus,omitempty"`
	// Embedded scrapes the targets itself and answers PromQL in process,
	// for machines without a Prometheus.
	Embedded *Embedded `yaml:"embedded,omitempty"`
	// Datadog queries Datadog's metrics API; checks are Datadog queries.
	Datadog *Datadog `yaml:"datadog,omitempty"`
	// Command runs a command for each query, which prints the value.
	Command *CommandSource `yaml:"command,omitempty"`
	// HTTP requests a URL for each query and reads the value from its
	// JSON answer.
	HTTP *HTTPSource `yaml:"http,omitempty"`
	// Selector is the label selector of the service's series, without
	// braces: job="api". Queries use it as $selector. With Datadog it is a
	// tag list (default service:$service,env:$environment,version:$version).
	Selector string `yaml:"selector"`
	// StatusLabel is the label holding the HTTP status code. Default
	// "status"; many services use "code".
	StatusLabel string `yaml:"status_label"`
	// ErrorStatus is the regular expression of failing status codes.
	// Default "5..".
	ErrorStatus string `yaml:"error_status"`
	// RequestsMetric counts requests. Default http_requests_total.
	RequestsMetric string `yaml:"requests_metric"`
	// DurationMetric is the request latency histogram, without _bucket.
	// Default http_request_duration_seconds.
	DurationMetric string `yaml:"duration_metric"`
	// ScrapeInterval is how often the source scrapes the service; it sizes
	// the default window. Default: measured at the start of each watch from
	// the samples of up{selector} (15s when that cannot be measured).
	ScrapeInterval Duration `yaml:"scrape_interval,omitempty"`
	// Window is the default sliding window of checks ($window). Default
	// max(4 x scrape_interval, 2 x phases.interval).
	Window Duration `yaml:"window,omitempty"`
	// QueryBudget is how many queries a second a watch may send to look at
	// the checks as often as the data change (every scrape) rather than
	// only every phases.interval. Default 10; 0 looks every interval only.
	QueryBudget *float64 `yaml:"query_budget,omitempty"`
}

// The languages the metric sources' queries are written in.
const (
	// LanguagePromQL: metrics.prometheus and metrics.embedded.
	LanguagePromQL = "promql"
	// LanguageDatadog: metrics.datadog; each query ends with the time it
	// covers in brackets, [$window] or [$since_warmup].
	LanguageDatadog = "datadog"
	// LanguageValues: metrics.command and metrics.http, which take any
	// text and answer with one value, never counts.
	LanguageValues = "values"
)

// Language is the language of the source's queries.
func (m *Metrics) Language() string {
	switch {
	case m.Datadog != nil:
		return LanguageDatadog
	case m.Command != nil || m.HTTP != nil:
		return LanguageValues
	}
	return LanguagePromQL
}

// Sources names the metric source sections the config sets (a valid one
// sets exactly one).
func (m *Metrics) Sources() []string {
	return setNames([]named{
		{"metrics.prometheus", m.Prometheus != nil}, {"metrics.embedded", m.Embedded != nil}, {"metrics.datadog", m.Datadog != nil},
		{"metrics.command", m.Command != nil}, {"metrics.http", m.HTTP != nil},
	})
}

// SourceField names the configured source's section, for messages.
func (m *Metrics) SourceField() string {
	if s := m.Sources(); len(s) > 0 {
		return s[0]
	}
	return "metrics.prometheus"
}

// named is one optional section and whether it is set.
type named struct {
	name string
	set  bool
}

// setNames lists the names of the sections that are set, in order.
func setNames(all []named) []string {
	var out []string
	for _, n := range all {
		if n.set {
			out = append(out, n.name)
		}
	}
	return out
}

// Datadog is Datadog's metrics query API (GET /api/v1/query).
type Datadog struct {
	// Site is the Datadog site: datadoghq.com (default), datadoghq.eu,
	// us3.datadoghq.com, us5.datadoghq.com, ap1.datadoghq.com, ddog-gov.com.
	Site string `yaml:"site,omitempty"`
	// URL replaces the site's API address (tests, proxies).
	URL        string `yaml:"url,omitempty"`
	APIKeyEnv  string `yaml:"api_key_env,omitempty"`
	APIKeyFile string `yaml:"api_key_file,omitempty"`
	AppKeyEnv  string `yaml:"app_key_env,omitempty"`
	AppKeyFile string `yaml:"app_key_file,omitempty"`
	// Span is the APM span the default checks read (trace.<span>.hits,
	// .errors and the trace.<span> latency distribution). Default
	// http.request.
	Span    string   `yaml:"span,omitempty"`
	Timeout Duration `yaml:"timeout"`
	Retries int      `yaml:"retries"`
}

// CommandSource runs Run (a shell command line) for each query, with the
// query as its one argument ($1) and in $DEPLOYWATCH_QUERY, and the time
// asked about in $DEPLOYWATCH_TIME (RFC 3339). The command prints a number,
// or JSON {"value": <number>, "samples": <number>}; nothing, "null" or
// {"value": null} is no data.
type CommandSource struct {
	Run     string   `yaml:"run"`
	Shell   string   `yaml:"shell,omitempty"`
	Timeout Duration `yaml:"timeout"`
}

// HTTPSource requests URL with the query as the query parameter (and the
// time as time, Unix seconds) and reads the value from the JSON answer
// with the jq expression Value (and the sample count with Samples).
type HTTPSource struct {
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers,omitempty"`
	// BearerTokenEnv names the environment variable holding a bearer token.
	BearerTokenEnv  string   `yaml:"bearer_token_env,omitempty"`
	BearerTokenFile string   `yaml:"bearer_token_file,omitempty"`
	Value           string   `yaml:"value"`
	Samples         string   `yaml:"samples,omitempty"`
	Timeout         Duration `yaml:"timeout"`
}

// DefaultQueryBudget is metrics.query_budget when the config sets none.
const DefaultQueryBudget = 10.0

// Prometheus is a Prometheus-compatible HTTP API.
type Prometheus struct {
	URL string `yaml:"url"`
	// BearerTokenEnv names the environment variable holding a bearer token.
	BearerTokenEnv string `yaml:"bearer_token_env,omitempty"`
	// BearerTokenFile is a file holding a bearer token.
	BearerTokenFile string     `yaml:"bearer_token_file,omitempty"`
	BasicAuth       *BasicAuth `yaml:"basic_auth,omitempty"`
	// Headers are sent with every query. They are not secret: use the
	// token fields for credentials.
	Headers map[string]string `yaml:"headers,omitempty"`
	Timeout Duration          `yaml:"timeout"`
	Retries int               `yaml:"retries"`
	// SigV4 signs every request with AWS Signature Version 4, for Amazon
	// Managed Service for Prometheus.
	SigV4 *SigV4 `yaml:"sigv4,omitempty"`
	// Google signs in with Google's Application Default Credentials, for
	// Google Cloud Managed Service for Prometheus.
	Google *Google `yaml:"google,omitempty"`
	// OAuth2 gets its tokens by the client-credentials grant, for Grafana
	// Cloud, Mimir and others behind an OAuth2 proxy.
	OAuth2 *OAuth2 `yaml:"oauth2,omitempty"`
	// TLS sets the server's certificate authority and a client
	// certificate (mTLS). It combines with any sign-in.
	TLS *TLS `yaml:"tls,omitempty"`
}

// SignIns names the sign-ins the source sets ("sigv4", "google",
// "oauth2", "bearer_token", "basic_auth"; a valid one sets at most one).
func (p *Prometheus) SignIns() []string {
	return setNames([]named{
		{"sigv4", p.SigV4 != nil}, {"google", p.Google != nil}, {"oauth2", p.OAuth2 != nil},
		{"bearer_token", p.BearerTokenEnv != "" || p.BearerTokenFile != ""}, {"basic_auth", p.BasicAuth != nil},
	})
}

// SigV4 is AWS request signing. Credentials come from the standard AWS
// chain: the environment, the shared config and credentials files, web
// identity (IRSA), the container or instance role.
type SigV4 struct {
	// Region of the workspace, e.g. us-east-1. Required.
	Region string `yaml:"region"`
	// RoleARN, when set, is assumed (STS AssumeRole) with the chain's
	// credentials, and its credentials sign the requests.
	RoleARN string `yaml:"role_arn,omitempty"`
	// Profile is the shared config profile. Default: the chain's own.
	Profile string `yaml:"profile,omitempty"`
	// Service is the signing name. Default aps.
	Service string `yaml:"service,omitempty"`
}

// Google is Google Cloud sign-in with Application Default Credentials:
// GOOGLE_APPLICATION_CREDENTIALS, gcloud's credentials, or the metadata
// server (workload identity).
type Google struct {
	// CredentialsFile is a service account or external account key file
	// to use instead of the default credentials.
	CredentialsFile string `yaml:"credentials_file,omitempty"`
	// Scopes default to https://www.googleapis.com/auth/monitoring.read.
	Scopes []string `yaml:"scopes,omitempty"`
}

// OAuth2 is the client-credentials grant (RFC 6749 section 4.4).
type OAuth2 struct {
	TokenURL         string   `yaml:"token_url"`
	ClientID         string   `yaml:"client_id"`
	ClientSecretEnv  string   `yaml:"client_secret_env,omitempty"`
	ClientSecretFile string   `yaml:"client_secret_file,omitempty"`
	Scopes           []string `yaml:"scopes,omitempty"`
	// EndpointParams are added to the token request (audience, say).
	EndpointParams map[string]string `yaml:"endpoint_params,omitempty"`
}

// TLS is the client side of a TLS connection.
type TLS struct {
	// CAFile holds the PEM certificates that may sign the server's
	// certificate, instead of the system's.
	CAFile string `yaml:"ca_file,omitempty"`
	// CertFile and KeyFile are the client certificate and its key (PEM),
	// for servers that require one.
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
	// ServerName overrides the name the server's certificate must carry.
	ServerName string `yaml:"server_name,omitempty"`
	// InsecureSkipVerify accepts any server certificate. For tests only:
	// it lets anyone in the middle read the queries and the credentials.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify,omitempty"`
}

// Embedded is deploywatch's own scraper and PromQL engine.
type Embedded struct {
	Scrape []ScrapeJob `yaml:"scrape"`
	// Retention bounds the samples kept in memory. Default 1h.
	Retention Duration `yaml:"retention"`
}

// ScrapeJob is targets scraped alike, labelled job="<job>".
type ScrapeJob struct {
	Job     string   `yaml:"job"`
	Targets []string `yaml:"targets"`
	// Interval between scrapes. Default 15s.
	Interval Duration `yaml:"interval"`
	// Timeout of one scrape. Default: the interval.
	Timeout Duration `yaml:"timeout,omitempty"`
	// Path of the metrics endpoint. Default /metrics.
	Path string `yaml:"path"`
	// Scheme is http or https. Default http.
	Scheme string `yaml:"scheme"`
}

// BasicAuth is HTTP basic authentication.
type BasicAuth struct {
	Username     string `yaml:"username"`
	PasswordEnv  string `yaml:"password_env,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`
}

// Baseline configures the pre-deploy measurement.
type Baseline struct {
	// Window is how far back from the deploy's start the baseline looks.
	// When the source holds less history, what it has is used. Default 10m.
	Window Duration `yaml:"window"`
	// Offset moves the baseline window back by this much (1d, 7d): the
	// same time a day or a week ago, for services with strong daily cycles.
	Offset Duration `yaml:"offset,omitempty"`
	// Control is a label selector, like metrics.selector, of instances the
	// deploy does not change. When a check fails, it is measured on them
	// too, over the same time: if they are as bad, a shared cause (a
	// dependency, the traffic) is at fault, not the release, and the watch
	// ends inconclusive instead of rolling back.
	Control string `yaml:"control,omitempty"`
}

// Phases times the timeline.
type Phases struct {
	// Rollout bounds the wait for the new version to be fully out. Default 10m.
	Rollout Duration `yaml:"rollout"`
	// Warmup is the grace period after the rollout in which only hard
	// failures count. Default 30s.
	Warmup Duration `yaml:"warmup"`
	// Verify bounds the post-deploy checklist. Default 1m.
	Verify Duration `yaml:"verify"`
	// Monitor is the bake window. Default 5m.
	Monitor Duration `yaml:"monitor"`
	// Interval is how often checks run. Default 10s.
	Interval Duration `yaml:"interval"`
}

// JudgeDefaults are inherited by every check that does not set its own.
type JudgeDefaults struct {
	// FailureLimit, when set, is how many consecutive failing measurements
	// fail a check, each judged on its own at the confidence (the judge
	// before the sequential test). Unset (the default), a statistical check
	// fails at the first look its sequential test decides, and a plain
	// query after two failing looks in a row.
	FailureLimit int `yaml:"failure_limit,omitempty"`
	// ErrorLimit is how many consecutive query errors make a check give up.
	// Default 3.
	ErrorLimit int `yaml:"error_limit"`
	// Confidence is how sure a statistical check must be to fail. Default 0.99.
	Confidence float64 `yaml:"confidence"`
	// Tolerance is how much worse than an already-breaching baseline a
	// value must be to fail. Default 25%.
	Tolerance Quantity `yaml:"tolerance"`
	// MinRequests is the least traffic a ratio or quantile is judged on.
	// Default 20.
	MinRequests float64 `yaml:"min_requests"`
}

// Check is one measurement judged every interval.
type Check struct {
	Name string `yaml:"name"`
	// Type is query (default), ratio, quantile or rate.
	Type string `yaml:"type,omitempty"`
	// Query is a PromQL expression giving one value (type query).
	Query string `yaml:"query,omitempty"`
	// Bad and Total count events (type ratio): e.g. 5xx and all requests.
	Bad   string `yaml:"bad,omitempty"`
	Total string `yaml:"total,omitempty"`
	// Histogram gives cumulative buckets by "le" (type quantile).
	Histogram string  `yaml:"histogram,omitempty"`
	Quantile  float64 `yaml:"quantile,omitempty"`
	// Count counts events over $window (type rate).
	Count string `yaml:"count,omitempty"`
	Warn  Rule   `yaml:"warn,omitempty"`
	Fail  Rule   `yaml:"fail,omitempty"`
	// Floor is the lowest fail line an upward relative rule may draw.
	Floor *Quantity `yaml:"floor,omitempty"`
	// Window is this check's $window. Default metrics.window.
	// Zero means the default, settled when the watch starts.
	Window       Duration  `yaml:"window,omitempty"`
	FailureLimit int       `yaml:"failure_limit,omitempty"`
	ErrorLimit   int       `yaml:"error_limit,omitempty"`
	Confidence   float64   `yaml:"confidence,omitempty"`
	Tolerance    *Quantity `yaml:"tolerance,omitempty"`
	MinRequests  float64   `yaml:"min_requests,omitempty"`
	// OnNoData is ignore (default), warn or fail. fail applies only when
	// the baseline had data: what was there before and is gone now fails.
	OnNoData string `yaml:"on_nodata,omitempty"`
	// Mode is enforce (default) or report (measured, never fails a deploy).
	Mode string `yaml:"mode,omitempty"`
	// Unit is how values are shown: percent, seconds, bytes, persecond, or
	// empty for plain numbers.
	Unit string `yaml:"unit,omitempty"`
	// Statistic says what a check's value is when it is not made of counts
	// (a percentile a source computed, a value a command printed): shown
	// in the report beside the verdict.
	Statistic string `yaml:"statistic,omitempty"`
}

// Default returns the configuration every file starts from.
func Default() Config {
	return Config{
		Target: Target{},
		Baseline: Baseline{
			Window: Duration(10 * time.Minute),
		},
		Phases: Phases{
			Rollout:  Duration(10 * time.Minute),
			Warmup:   Duration(30 * time.Second),
			Verify:   Duration(time.Minute),
			Monitor:  Duration(5 * time.Minute),
			Interval: Duration(10 * time.Second),
		},
		OnFailure:      PolicyRollback,
		OnInconclusive: PolicyNotify,
		Alerts:         Alerts{For: Duration(5 * time.Minute), Window: Duration(5 * time.Minute)},
		Judge: JudgeDefaults{
			ErrorLimit:  3,
			Confidence:  0.99,
			Tolerance:   0.25,
			MinRequests: 20,
		},
	}
}

func defaultCommandTarget() CommandTarget {
	return CommandTarget{
		Shell: "/bin/sh",
		Timeouts: HookTimeouts{
			Deploy:   Duration(10 * time.Minute),
			Rollback: Duration(5 * time.Minute),
			Status:   Duration(30 * time.Second),
			Current:  Duration(30 * time.Second),
			Pause:    Duration(time.Minute),
		},
	}
}

func defaultKubernetesTarget() KubernetesTarget {
	c := defaultCommandTarget()
	return KubernetesTarget{
		Namespace: "default", RestartLimit: 2, NotReadyGrace: Duration(2 * time.Minute),
		GitOps: GitOpsRespect, Shell: c.Shell, Timeouts: c.Timeouts,
	}
}

func defaultMetrics() Metrics {
	return Metrics{
		StatusLabel:    "status",
		ErrorStatus:    "5..",
		RequestsMetric: "http_requests_total",
		DurationMetric: "http_request_duration_seconds",
	}
}

func defaultPrometheus() Prometheus {
	return Prometheus{Timeout: Duration(10 * time.Second), Retries: 2}
}

// complete fills in what depends on other fields, after decoding.
func (c *Config) complete() {
	if m := c.Metrics; m != nil && m.Selector == "" {
		switch {
		case m.Datadog != nil:
			m.Selector = DatadogSelector(c.Environment)
		case c.Target.Kubernetes != nil && m.Language() == LanguagePromQL:
			m.Selector = KubernetesSelector
		}
	}
	if m := c.Metrics; m != nil {
		if m.Datadog != nil && m.ScrapeInterval == 0 {
			// The agent and the tracers flush every 10 s.
			m.ScrapeInterval = Duration(DatadogFlushInterval)
		}
		if m.Language() == LanguageValues && m.ScrapeInterval == 0 {
			// Nothing to measure it from: one look per interval.
			m.ScrapeInterval = c.Phases.Interval
		}
		if m.QueryBudget == nil {
			m.QueryBudget = ptr(DefaultQueryBudget)
			if m.Datadog != nil {
				// Datadog allows an organisation 1,600 queries an hour:
				// one look per phases.interval is already most of that.
				m.QueryBudget = ptr(0.0)
			}
		}
		if e := m.Embedded; e != nil {
			if e.Retention == 0 {
				e.Retention = Duration(time.Hour)
			}
			for i := range e.Scrape {
				j := &e.Scrape[i]
				if j.Interval == 0 {
					j.Interval = Duration(15 * time.Second)
				}
				if j.Path == "" {
					j.Path = "/metrics"
				}
				if j.Scheme == "" {
					j.Scheme = "http"
				}
				// The embedded engine knows its scrape interval: no need to measure it.
				if m.ScrapeInterval == 0 || j.Interval < m.ScrapeInterval {
					m.ScrapeInterval = j.Interval
				}
			}
		}
		switch {
		case len(c.Checks) > 0:
		case m.Language() == LanguagePromQL:
			c.Checks, c.Skipped = c.defaultChecks()
			c.DefaultChecks = true
		case m.Language() == LanguageDatadog:
			c.Checks, c.Skipped = c.datadogChecks()
			c.DefaultChecks = true
		}
		for i := range c.Checks {
			ch := &c.Checks[i]
			switch {
			case ch.Statistic != "":
			case m.Language() == LanguageValues:
				ch.Statistic = "the value " + m.SourceField() + " gives: no counts, so no significance test"
			case m.Language() == LanguageDatadog && (ch.Type == "" || ch.Type == TypeQuery):
				ch.Statistic = "Datadog's value of each interval, averaged over the window: not counts, so no significance test"
			}
		}
	}
	if t := c.Traffic; t != nil {
		if t.MaxRequests == 0 {
			t.MaxRequests = int64(math.Ceil(t.Rate * (c.Phases.Warmup + c.Phases.Monitor).D().Seconds() * 1.2))
		}
		if t.Concurrency == 0 {
			t.Concurrency = 4
		}
		if t.Header == "" {
			t.Header = "X-Deploywatch-Synthetic"
		}
	}
	for i := range c.Checks {
		ch := &c.Checks[i]
		if ch.Type == "" {
			ch.Type = TypeQuery
		}
		if ch.FailureLimit == 0 {
			ch.FailureLimit = c.Judge.FailureLimit
		}
		if ch.ErrorLimit == 0 {
			ch.ErrorLimit = c.Judge.ErrorLimit
		}
		if ch.Confidence == 0 {
			ch.Confidence = c.Judge.Confidence
		}
		if ch.Tolerance == nil {
			t := c.Judge.Tolerance
			ch.Tolerance = &t
		}
		if ch.MinRequests == 0 && (ch.Type == TypeRatio || ch.Type == TypeQuantile) {
			ch.MinRequests = c.Judge.MinRequests
		}
		if ch.OnNoData == "" {
			ch.OnNoData = NoDataIgnore
		}
		if ch.Mode == "" {
			ch.Mode = ModeEnforce
		}
		if ch.Type == TypeQuantile && ch.Quantile == 0 {
			ch.Quantile = 0.99
		}
	}
}

// defaultChecks builds the seed's table from the metric conventions.
//
// The error ratio and the latency quantile count what happened since the
// warm-up ended ($since_warmup) rather than over a fixed [5m]: every
// request served by the new version is evidence, so a regression is proven
// within seconds at real traffic, and cold-start noise of the warm-up is
// left out. The request rate uses the sliding $window, because a collapse
// must show quickly, not be averaged away.
func (c *Config) defaultChecks() ([]Check, []SkippedCheck) {
	m := c.Metrics
	req := m.RequestsMetric
	errSel := fmt.Sprintf(`{$selector,%s=~"%s"}`, m.StatusLabel, m.ErrorStatus)
	checks := []Check{
		{
			Name:  "error_rate",
			Type:  TypeRatio,
			Bad:   fmt.Sprintf("sum(increase(%s%s[$since_warmup]))", req, errSel),
			Total: fmt.Sprintf("sum(increase(%s{$selector}[$since_warmup]))", req),
			Warn:  mustRule("> 0.1%"),
			Fail:  mustRule("> 1%"),
			Unit:  "percent",
		},
		{
			Name:      "latency_p99",
			Type:      TypeQuantile,
			Histogram: fmt.Sprintf("sum by (le) (increase(%s_bucket{$selector}[$since_warmup]))", m.DurationMetric),
			Quantile:  0.99,
			Warn:      mustRule("> 500ms"),
			Fail:      mustRule("> 2x baseline"),
			Floor:     ptr(Quantity(0.1)),
			Unit:      "seconds",
		},
		{
			Name:     "request_rate",
			Type:     TypeRate,
			Count:    fmt.Sprintf("sum(increase(%s{$selector}[$window]))", req),
			Warn:     mustRule("< 0.5x baseline"),
			Fail:     mustRule("< 0.2x baseline"),
			OnNoData: NoDataFail,
			Unit:     "persecond",
		},
	}
	var skipped []SkippedCheck
	if c.Target.Kubernetes != nil {
		// Each new pod's usage as a share of its containers' limits:
		// cAdvisor's usage over kube-state-metrics' limits, for the pods of
		// the version judged. Without those exporters the checks have no
		// data and say so.
		pods := `namespace="$namespace",pod=~"$deployment-$pod_template_hash-.*"`
		if kind, _ := c.Target.Kubernetes.Workload(); kind != KindDeployment {
			// StatefulSet and DaemonSet pod names do not carry the hash.
			pods = `namespace="$namespace",pod=~"$pods"`
		}
		checks = append(checks,
			Check{
				Name: "cpu",
				Query: fmt.Sprintf(`max(sum by (pod) (rate(container_cpu_usage_seconds_total{%s,container!="",container!="POD"}[$window])) / sum by (pod) (kube_pod_container_resource_limits{%s,resource="cpu"}))`,
					pods, pods),
				Warn: mustRule("> 70%"), Fail: mustRule("> 90%"), Unit: "percent",
			},
			Check{
				Name: "memory",
				Query: fmt.Sprintf(`max(sum by (pod) (container_memory_working_set_bytes{%s,container!="",container!="POD"}) / sum by (pod) (kube_pod_container_resource_limits{%s,resource="memory"}))`,
					pods, pods),
				Warn: mustRule("> 80%"), Fail: mustRule("> 95%"), Unit: "percent",
			})
		return checks, skipped
	}
	if cmd := c.Target.Command; cmd != nil && cmd.CPUCores > 0 {
		checks = append(checks, Check{
			Name:  "cpu",
			Query: fmt.Sprintf("max(rate(process_cpu_seconds_total{$selector}[$window])) / %s", formatFloat(cmd.CPUCores)),
			Warn:  mustRule("> 70%"),
			Fail:  mustRule("> 90%"),
			Unit:  "percent",
		})
	} else {
		skipped = append(skipped, SkippedCheck{"cpu", "no CPU limit: set target.command.cpu_cores to judge CPU usage"})
	}
	if cmd := c.Target.Command; cmd != nil && cmd.MemoryLimit > 0 {
		checks = append(checks, Check{
			Name:  "memory",
			Query: fmt.Sprintf("max(process_resident_memory_bytes{$selector}) / %s", formatFloat(float64(cmd.MemoryLimit))),
			Warn:  mustRule("> 80%"),
			Fail:  mustRule("> 95%"),
			Unit:  "percent",
		})
	} else {
		skipped = append(skipped, SkippedCheck{"memory", "no memory limit: set target.command.memory_limit to judge memory usage"})
	}
	return checks, skipped
}

// DatadogFlushInterval is how often Datadog's agent and tracers send
// their data: the scrape interval of a Datadog source.
const DatadogFlushInterval = 10 * time.Second

// DatadogSelector is the tag list of a Datadog source's default checks:
// the service, its environment when the config names one, and the version
// judged.
func DatadogSelector(environment string) string {
	if environment == "" {
		return "service:$service,version:$version"
	}
	return "service:$service,env:$environment,version:$version"
}

// datadogChecks is the seed's table for Datadog's APM metrics: the
// trace.<span>.hits and .errors counts (exact counts, so the same tests
// as with Prometheus apply) and the trace.<span> latency distribution,
// whose percentile Datadog computes (a value, not counts: the check says
// so, and fails on a failure limit rather than a significance test).
func (c *Config) datadogChecks() ([]Check, []SkippedCheck) {
	span := c.Metrics.Datadog.Span
	checks := []Check{
		{
			Name:  "error_rate",
			Type:  TypeRatio,
			Bad:   fmt.Sprintf("sum:trace.%s.errors{$selector}.as_count()[$since_warmup]", span),
			Total: fmt.Sprintf("sum:trace.%s.hits{$selector}.as_count()[$since_warmup]", span),
			Warn:  mustRule("> 0.1%"),
			Fail:  mustRule("> 1%"),
			Unit:  "percent",
		},
		{
			Name:      "latency_p99",
			Query:     fmt.Sprintf("p99:trace.%s{$selector}[$since_warmup]", span),
			Warn:      mustRule("> 500ms"),
			Fail:      mustRule("> 2x baseline"),
			Floor:     ptr(Quantity(0.1)),
			Unit:      "seconds",
			Statistic: "Datadog's p99 of each interval, averaged over the window: a percentile, not counts, so no significance test",
		},
		{
			Name:     "request_rate",
			Type:     TypeRate,
			Count:    fmt.Sprintf("sum:trace.%s.hits{$selector}.as_count()[$window]", span),
			Warn:     mustRule("< 0.5x baseline"),
			Fail:     mustRule("< 0.2x baseline"),
			OnNoData: NoDataFail,
			Unit:     "persecond",
		},
	}
	skipped := []SkippedCheck{
		{"cpu", "the default CPU check reads Prometheus metrics: with metrics.datadog, write it as a Datadog query (e.g. avg:kubernetes.cpu.usage.total{...})"},
		{"memory", "the default memory check reads Prometheus metrics: with metrics.datadog, write it as a Datadog query"},
	}
	return checks, skipped
}

// Query roles, the fields of a check that hold PromQL.
var queryRoles = []string{"query", "bad", "total", "histogram", "count"}

// QueryFor returns the PromQL template of role ("query", "bad", "total",
// "histogram" or "count"), or "".
func (ch *Check) QueryFor(role string) string {
	switch role {
	case "query":
		return ch.Query
	case "bad":
		return ch.Bad
	case "total":
		return ch.Total
	case "histogram":
		return ch.Histogram
	case "count":
		return ch.Count
	}
	return ""
}

// Accumulates reports whether the check's data accumulate from a fixed
// start: every query counts since the deploy or the warm-up ($since_deploy,
// $since_warmup) and none over the sliding $window. Such a check is judged
// by the sequential test; the others spend the error over their looks.
func (ch *Check) Accumulates() bool {
	if ch.Type == TypeQuery {
		return false
	}
	cumulative := false
	for _, expr := range ch.Queries() {
		for _, name := range Variables(expr) {
			switch name {
			case VarWindow:
				return false
			case VarSinceDeploy, VarSinceWarmup:
				cumulative = true
			}
		}
	}
	return cumulative
}

// Test is how the check's looks share the chance of failing a healthy
// release: per look when a failure limit is set (the user's choice), else
// the sequential test for data that accumulate and alpha spent over the
// looks for the rest.
func (ch *Check) Test() judge.Test {
	switch {
	case ch.FailureLimit > 0:
		return judge.PerLook
	case ch.Accumulates():
		return judge.Sequential
	}
	return judge.Spent
}

// Failures is how many failing looks in a row fail the check: its
// failure limit when set; else one for a statistical check, whose test
// already allows for the many looks, and two for a plain query, which has
// no statistics to lean on.
func (ch *Check) Failures() int {
	switch {
	case ch.FailureLimit > 0:
		return ch.FailureLimit
	case ch.Type == TypeQuery:
		return 2
	}
	return 1
}

// Queries returns the check's PromQL templates by role.
func (ch *Check) Queries() map[string]string {
	q := map[string]string{}
	for _, role := range queryRoles {
		if expr := ch.QueryFor(role); strings.TrimSpace(expr) != "" {
			q[role] = expr
		}
	}
	return q
}

func mustRule(s string) Rule {
	var r Rule
	r.Rule = judge.MustParseRule(s)
	return r
}

func ptr[T any](v T) *T { return &v }
