package cli

import (
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/notify"
	"github.com/deploywatch/deploywatch/internal/notify/datadog"
	"github.com/deploywatch/deploywatch/internal/notify/github"
	"github.com/deploywatch/deploywatch/internal/notify/grafana"
	"github.com/deploywatch/deploywatch/internal/notify/slack"
	"github.com/deploywatch/deploywatch/internal/notify/webhook"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// flushTimeout bounds the wait for pending notifications at exit.
const flushTimeout = 10 * time.Second

// sinks builds the configured sinks, plus GitHub Actions when running
// there. Secrets are read now: a missing one is a config error.
func (a *app) sinks(cfg *config.Config) ([]notify.Sink, error) {
	client := &http.Client{}
	var out []notify.Sink
	for i, n := range cfg.Notify {
		at := fmt.Sprintf("notify[%d].", i)
		switch {
		case n.Slack != nil:
			u, err := cfg.Secret(a.env, at+"slack.webhook_url", n.Slack.WebhookURLEnv, n.Slack.WebhookURLFile)
			if err != nil {
				return nil, err
			}
			out = append(out, slack.New(u, n.Slack.Events, client))
		case n.Grafana != nil:
			g := n.Grafana
			tok, err := cfg.Secret(a.env, at+"grafana.token", g.TokenEnv, g.TokenFile)
			if err != nil {
				return nil, err
			}
			out = append(out, grafana.New(grafana.Options{URL: g.URL, Token: tok, DashboardUID: g.DashboardUID,
				PanelID: g.PanelID, Tags: g.Tags, Events: g.Events, Client: client}))
		case n.Datadog != nil:
			d := n.Datadog
			key, err := cfg.Secret(a.env, at+"datadog.api_key", d.APIKeyEnv, d.APIKeyFile)
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
			secret, err := cfg.Secret(a.env, at+"webhook.secret", w.SecretEnv, w.SecretFile)
			if err != nil {
				return nil, err
			}
			out = append(out, webhook.New(w.URL, secret, w.Events, client))
		}
	}
	if gh := github.FromEnv(a.env, a.stdout); gh != nil {
		out = append(out, gh)
	}
	return out, nil
}

func (a *app) dispatcher(cfg *config.Config) (*notify.Dispatcher, error) {
	sinks, err := a.sinks(cfg)
	if err != nil {
		return nil, err
	}
	return notify.NewDispatcher(sinks, notify.DispatchOptions{RunURL: github.RunURL(a.env), DashboardURL: cfg.DashboardURL}), nil
}

func (a *app) notifyCommand() *cobra.Command {
	var file, kind, version, reason string
	c := &cobra.Command{
		Use:   "notify -f deploywatch.yaml --event started|stable|failed|inconclusive --version V",
		Short: "Send one deploy notification to the configured sinks",
		Long: `notify sends one message to every sink of the config's notify section (and to
GitHub Actions when running there), for pipelines that only need this
piece: a deploy started, or ended stable, failed or inconclusive.
Exit 0 when every sink took it, 1 otherwise.`,
		Example: `  deploywatch notify -f deploywatch.yaml --event started --version "$GITHUB_SHA"
  deploywatch notify -f deploywatch.yaml --event failed --version "$GITHUB_SHA" --reason "smoke tests failed"`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadFile(file)
			if err != nil {
				return err
			}
			if version == "" {
				version, _ = a.env("GITHUB_SHA")
			}
			now := time.Now()
			m := notify.Message{Service: cfg.Service, Environment: cfg.Environment, Version: version,
				TriggeredBy: a.triggeredBy(), StartedAt: now, At: now, Reason: reason,
				RunURL: github.RunURL(a.env), DashboardURL: cfg.DashboardURL}
			switch kind {
			case "started":
				m.Kind = event.Started
			case "stable", "failed", "inconclusive":
				m.Kind, m.Verdict = event.Verdict, kind
				m.Report = &watch.Report{Verdict: watch.Verdict(kind), Reason: reason,
					Deploy: watch.Deploy{Service: cfg.Service, Environment: cfg.Environment, Version: version, StartedAt: now}}
			default:
				return usagef("--event %q: want started, stable, failed or inconclusive", kind)
			}
			d, err := a.dispatcher(cfg)
			if err != nil {
				return err
			}
			return a.sendOnce(d, m)
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "deploywatch.yaml", "config file")
	c.Flags().StringVar(&kind, "event", "", "started, stable, failed or inconclusive")
	c.Flags().StringVar(&version, "version", "", "the release; default $GITHUB_SHA")
	c.Flags().StringVar(&reason, "reason", "", "why, for stable/failed/inconclusive")
	return c
}

func (a *app) annotateCommand() *cobra.Command {
	var file, version, text, start, end string
	c := &cobra.Command{
		Use:   "annotate -f deploywatch.yaml --version V [--start TIME] [--end TIME]",
		Short: "Mark a deploy on the Grafana dashboards of the config",
		Long: `annotate posts a Grafana annotation for a deploy to every grafana sink of the
config: a point at --start (default now), or a region from --start to --end.`,
		Example: `  deploywatch annotate -f deploywatch.yaml --version "$GITHUB_SHA" --text "Deployed by $GITHUB_ACTOR"`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadFile(file)
			if err != nil {
				return err
			}
			now := time.Now()
			from, err := parseStartedAt(start, now)
			if err != nil {
				return err
			}
			if from.IsZero() {
				from = now
			}
			m := notify.Message{Kind: event.Started, Service: cfg.Service, Environment: cfg.Environment, Version: version,
				TriggeredBy: a.triggeredBy(), StartedAt: from, At: from, Reason: text, RunURL: github.RunURL(a.env)}
			if end != "" {
				to, err := parseStartedAt(end, now)
				if err != nil {
					return usagef("--end: %v", err)
				}
				m.Kind, m.At, m.Verdict = event.Verdict, to, "stable"
			}
			all, err := a.sinks(cfg)
			if err != nil {
				return err
			}
			var graf []notify.Sink
			for _, s := range all {
				if g, ok := s.(*grafana.Grafana); ok {
					graf = append(graf, g)
				}
			}
			if len(graf) == 0 {
				return usagef("no grafana sink under notify in %s", cfg.Path)
			}
			return a.sendOnce(notify.NewDispatcher(graf, notify.DispatchOptions{}), m)
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "deploywatch.yaml", "config file")
	c.Flags().StringVar(&version, "version", "", "the release")
	c.Flags().StringVar(&text, "text", "", "extra text for the annotation")
	c.Flags().StringVar(&start, "start", "", "when: RFC 3339, Unix seconds or a duration ago (default now)")
	c.Flags().StringVar(&end, "end", "", "make it a region ending then")
	return c
}

// sendOnce delivers one message, waits (bounded) for every sink, and
// prints each outcome; a failed delivery is exit 1.
func (a *app) sendOnce(d *notify.Dispatcher, m notify.Message) error {
	d.Send(m)
	d.Flush(flushTimeout)
	failed := 0
	for _, dl := range d.Deliveries() {
		if dl.OK {
			fmt.Fprintf(a.stdout, "✓ %s %s\n", dl.Sink, dl.Event)
		} else {
			failed++
			fmt.Fprintf(a.stdout, "✗ %s %s: %s\n", dl.Sink, dl.Event, dl.Error)
		}
	}
	if failed > 0 {
		return &exitError{code: ExitFailed}
	}
	return nil
}
