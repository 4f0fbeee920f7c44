package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/notify"
	"github.com/deploywatch/deploywatch/internal/notify/github"
	"github.com/deploywatch/deploywatch/internal/notify/grafana"
	"github.com/deploywatch/deploywatch/internal/watch"
	"github.com/deploywatch/deploywatch/internal/wire"
)

// flushTimeout bounds the wait for pending notifications at exit.
const flushTimeout = 10 * time.Second

// dispatcher builds the config's sinks and their dispatcher.
func (a *app) dispatcher(cfg *config.Config) (*notify.Dispatcher, error) {
	d, err := wire.Dispatcher(cfg, a.env, a.stdout)
	return d, usageIfConfig(err)
}

// sinks builds the config's sinks.
func (a *app) sinks(cfg *config.Config) ([]notify.Sink, error) {
	s, err := wire.Sinks(cfg, a.env, a.stdout)
	return s, usageIfConfig(err)
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
