// Package wire builds the parts of a watch from a config: the metric
// source, the notification sinks, the platform and the checklist's
// sources. It is the one place the CLI and serve share, so that a watch is
// put together the same way whoever runs it.
package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"k8s.io/client-go/rest"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/metrics"
	metriccmd "github.com/deploywatch/deploywatch/internal/metrics/command"
	ddmetrics "github.com/deploywatch/deploywatch/internal/metrics/datadog"
	"github.com/deploywatch/deploywatch/internal/metrics/embedded"
	"github.com/deploywatch/deploywatch/internal/metrics/prometheus"
	"github.com/deploywatch/deploywatch/internal/metrics/signin"
	"github.com/deploywatch/deploywatch/internal/metrics/web"
	"github.com/deploywatch/deploywatch/internal/notify"
	"github.com/deploywatch/deploywatch/internal/notify/datadog"
	"github.com/deploywatch/deploywatch/internal/notify/github"
	"github.com/deploywatch/deploywatch/internal/notify/grafana"
	"github.com/deploywatch/deploywatch/internal/notify/slack"
	"github.com/deploywatch/deploywatch/internal/notify/webhook"
	"github.com/deploywatch/deploywatch/internal/platform/command"
	"github.com/deploywatch/deploywatch/internal/platform/kube"
	"github.com/deploywatch/deploywatch/internal/verify"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// ErrConfig marks an error in what the config asks for (a bad URL, a
// kubeconfig that cannot be read): the user's to fix, exit 2 in the CLI.
var ErrConfig = errors.New("config")

type configError struct{ err error }

func (e *configError) Error() string   { return e.err.Error() }
func (e *configError) Unwrap() []error { return []error{e.err, ErrConfig} }

func configErrorf(format string, args ...any) error {
	return &configError{fmt.Errorf(format, args...)}
}

// Source builds the metric source of the config, or nil without one. A
// source that signs in fetches its first credentials and asks the server
// one query now, bounded by ctx: a sign-in that does not work is a config
// error before anything is deployed.
func Source(ctx context.Context, cfg *config.Config, env func(string) (string, bool), log *slog.Logger) (watch.Querier, error) {
	if cfg.Metrics == nil {
		return nil, nil
	}
	if e := cfg.Metrics.Embedded; e != nil {
		src, err := EmbeddedSource(e, log)
		if err != nil {
			return nil, err
		}
		return src, nil
	}
	switch m := cfg.Metrics; {
	case m.Datadog != nil:
		return datadogSource(ctx, cfg, env, log)
	case m.Command != nil:
		src, err := metriccmd.New(metriccmd.Config{Run: m.Command.Run, Shell: m.Command.Shell, Dir: cfg.Resolve("."), Timeout: m.Command.Timeout.D()})
		if err != nil {
			return nil, configErrorf("%v", err)
		}
		return src, nil
	case m.HTTP != nil:
		h := m.HTTP
		token, err := cfg.Secret(env, "metrics.http.bearer_token", h.BearerTokenEnv, h.BearerTokenFile)
		if err != nil {
			return nil, err
		}
		src, err := web.New(web.Config{URL: h.URL, Headers: h.Headers, BearerToken: token, Value: h.Value, Samples: h.Samples, Timeout: h.Timeout.D()})
		if err != nil {
			return nil, configErrorf("%v", err)
		}
		return src, nil
	}
	token, user, pass, err := cfg.PrometheusCredentials(env)
	if err != nil {
		return nil, err
	}
	p := cfg.Metrics.Prometheus
	pc := prometheus.Config{
		URL: p.URL, BearerToken: token, Username: user, Password: pass,
		Headers: p.Headers, Timeout: p.Timeout.D(), Retries: p.Retries,
	}
	if p.SigV4 != nil || p.Google != nil || p.OAuth2 != nil || p.TLS != nil {
		if pc.Transport, err = signInTransport(ctx, cfg, env); err != nil {
			return nil, err
		}
	}
	c, err := prometheus.New(pc)
	if err != nil {
		return nil, configErrorf("metrics.prometheus: %v", err)
	}
	if len(p.SignIns()) > 0 || p.TLS != nil {
		if err := c.Probe(ctx); errors.Is(err, metrics.ErrSignIn) {
			return nil, configErrorf("metrics.prometheus: %v", err)
		} else if err != nil {
			log.Warn("the metric source did not answer a first query; the watch goes on and retries", "err", err)
		}
	}
	return c, nil
}

// datadogSource builds the Datadog source and checks its keys at once: a
// key Datadog refuses is a config error before anything is deployed.
func datadogSource(ctx context.Context, cfg *config.Config, env func(string) (string, bool), log *slog.Logger) (watch.Querier, error) {
	d := cfg.Metrics.Datadog
	apiKey, err := cfg.Secret(env, "metrics.datadog.api_key", d.APIKeyEnv, d.APIKeyFile)
	if err != nil {
		return nil, err
	}
	appKey, err := cfg.Secret(env, "metrics.datadog.app_key", d.AppKeyEnv, d.AppKeyFile)
	if err != nil {
		return nil, err
	}
	base := d.URL
	if base == "" {
		base = ddmetrics.SiteURL(d.Site)
	}
	c, err := ddmetrics.New(ddmetrics.Config{URL: base, APIKey: apiKey, AppKey: appKey, Timeout: d.Timeout.D(), Retries: d.Retries,
		RateLimitWait: watch.DatadogRateLimitWait, Logger: log})
	if err != nil {
		return nil, configErrorf("metrics.datadog: %v", err)
	}
	vctx, cancel := context.WithTimeout(ctx, d.Timeout.D())
	defer cancel()
	if err := c.Validate(vctx); errors.Is(err, metrics.ErrSignIn) {
		return nil, configErrorf("metrics.datadog: %v", err)
	} else if err != nil {
		log.Warn("Datadog did not answer a first query; the watch goes on and retries", "err", err)
	}
	return c, nil
}

// signInTransport builds the transport of the Prometheus source's sign-in.
func signInTransport(ctx context.Context, cfg *config.Config, env func(string) (string, bool)) (http.RoundTripper, error) {
	p := cfg.Metrics.Prometheus
	o := signin.Options{SigV4: p.SigV4, Google: p.Google, OAuth2: p.OAuth2, TLS: p.TLS, Resolve: cfg.Resolve}
	if p.OAuth2 != nil {
		secret, err := cfg.Secret(env, "metrics.prometheus.oauth2.client_secret", p.OAuth2.ClientSecretEnv, p.OAuth2.ClientSecretFile)
		if err != nil {
			return nil, err
		}
		o.OAuth2ClientSecret = secret
	}
	sctx, cancel := context.WithTimeout(ctx, max(p.Timeout.D(), 10*time.Second))
	defer cancel()
	rt, err := signin.Transport(sctx, o)
	if err != nil {
		return nil, configErrorf("%v", err)
	}
	return rt, nil
}

// EmbeddedSource builds the embedded engine of a config section.
func EmbeddedSource(e *config.Embedded, log *slog.Logger) (*embedded.Source, error) {
	opts := embedded.Options{Retention: e.Retention.D(), Logger: log}
	for _, j := range e.Scrape {
		opts.Scrape = append(opts.Scrape, embedded.ScrapeConfig{
			Job: j.Job, Targets: j.Targets, Interval: j.Interval.D(), Timeout: j.Timeout.D(), Path: j.Path, Scheme: j.Scheme,
		})
	}
	src, err := embedded.New(opts)
	if err != nil {
		return nil, configErrorf("metrics.embedded: %v", err)
	}
	return src, nil
}

// KubeOptions override the config's Kubernetes connection, like kubectl's
// flags.
type KubeOptions struct {
	Kubeconfig string `json:"kubeconfig,omitempty"`
	Context    string `json:"context,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	// REST, when set, is the connection to use (serve has one).
	REST *rest.Config `json:"-"`
}

// Platform builds the deploy target of the config. out receives the hooks'
// output lines; deployArgv replaces the deploy hook (run's command after
// --). close releases what it holds.
func Platform(ctx context.Context, cfg *config.Config, o KubeOptions, out func(hook, line string), deployArgv []string) (p watch.Platform, close func(), err error) {
	if cfg.Target.Kubernetes != nil {
		t, err := KubeTarget(ctx, cfg, o, out, deployArgv)
		if err != nil {
			return nil, nil, err
		}
		return t, t.Close, nil
	}
	cmdCfg := cfg.Target.Command
	dir := ""
	if cmdCfg.Dir != "" {
		dir = cfg.Resolve(cmdCfg.Dir)
	}
	t := command.New(*cmdCfg, dir, out)
	t.DeployArgv = deployArgv
	return t, func() {}, nil
}

// KubeTarget builds the Kubernetes target of the config.
func KubeTarget(ctx context.Context, cfg *config.Config, o KubeOptions, out func(hook, line string), deployArgv []string) (*kube.Target, error) {
	kc := *cfg.Target.Kubernetes
	if o.Namespace != "" {
		kc.Namespace = o.Namespace
	}
	if o.Context != "" {
		kc.Context = o.Context
	}
	rc := o.REST
	if rc == nil {
		path := o.Kubeconfig
		if path == "" && kc.Kubeconfig != "" {
			path = cfg.Resolve(kc.Kubeconfig)
		}
		var err error
		if rc, err = kube.RESTConfig(kube.ClientOptions{Kubeconfig: path, Context: kc.Context}); err != nil {
			return nil, configErrorf("%v", err)
		}
	}
	hooks := command.New(config.CommandTarget{
		Deploy: kc.Deploy, Rollback: kc.RollbackCommand, Shell: kc.Shell, Timeouts: kc.Timeouts,
	}, "", out)
	hooks.DeployArgv = deployArgv
	return kube.New(ctx, rc, kc, hooks)
}

// ChecklistSources are what the checklist reads from the metric source
// and the platform.
func ChecklistSources(src watch.Querier, platform watch.Platform) verify.Sources {
	s := verify.Sources{Metrics: src}
	s.Logs, _ = platform.(verify.LogSource)
	if qv, ok := platform.(watch.QueryVarser); ok {
		s.Vars = func(ctx context.Context) map[string]string { return qv.QueryVars(ctx, watch.Deploy{}, false) }
	}
	return s
}

// Sinks builds the configured sinks, plus GitHub Actions when running
// there. Secrets are read now: a missing one is a config error.
func Sinks(cfg *config.Config, env func(string) (string, bool), stdout io.Writer) ([]notify.Sink, error) {
	client := &http.Client{}
	var out []notify.Sink
	for i, n := range cfg.Notify {
		at := fmt.Sprintf("notify[%d].", i)
		switch {
		case n.Slack != nil:
			u, err := cfg.Secret(env, at+"slack.webhook_url", n.Slack.WebhookURLEnv, n.Slack.WebhookURLFile)
			if err != nil {
				return nil, err
			}
			out = append(out, slack.New(u, n.Slack.Events, client))
		case n.Grafana != nil:
			g := n.Grafana
			tok, err := cfg.Secret(env, at+"grafana.token", g.TokenEnv, g.TokenFile)
			if err != nil {
				return nil, err
			}
			out = append(out, grafana.New(grafana.Options{URL: g.URL, Token: tok, DashboardUID: g.DashboardUID,
				PanelID: g.PanelID, Tags: g.Tags, Events: g.Events, Client: client}))
		case n.Datadog != nil:
			d := n.Datadog
			key, err := cfg.Secret(env, at+"datadog.api_key", d.APIKeyEnv, d.APIKeyFile)
			if err != nil {
				return nil, err
			}
			base := d.URL
			if base == "" {
				site := d.Site
				if site == "" {
					site = "datadoghq.com"
				}
				base = datadog.SiteURL(site)
			}
			out = append(out, datadog.New(base, key, d.Events, client))
		case n.Webhook != nil:
			w := n.Webhook
			secret, err := cfg.Secret(env, at+"webhook.secret", w.SecretEnv, w.SecretFile)
			if err != nil {
				return nil, err
			}
			out = append(out, webhook.New(w.URL, secret, w.Events, client))
		}
	}
	if gh := github.FromEnv(env, stdout); gh != nil {
		out = append(out, gh)
	}
	return out, nil
}

// Dispatcher builds the sinks and their dispatcher.
func Dispatcher(cfg *config.Config, env func(string) (string, bool), stdout io.Writer) (*notify.Dispatcher, error) {
	sinks, err := Sinks(cfg, env, stdout)
	if err != nil {
		return nil, err
	}
	return notify.NewDispatcher(sinks, notify.DispatchOptions{RunURL: github.RunURL(env), DashboardURL: cfg.DashboardURL}), nil
}
