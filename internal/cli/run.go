package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/metrics/embedded"
	"github.com/deploywatch/deploywatch/internal/metrics/prometheus"
	"github.com/deploywatch/deploywatch/internal/notify"
	"github.com/deploywatch/deploywatch/internal/platform/command"
	"github.com/deploywatch/deploywatch/internal/platform/kube"
	"github.com/deploywatch/deploywatch/internal/verify"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// watchFlags are shared by run and watch.
type watchFlags struct {
	file      string
	version   string
	report    string
	output    string
	startedAt string
	kube      kubeFlags
}

// kubeFlags are kubectl's connection flags, for a Kubernetes target.
type kubeFlags struct {
	kubeconfig, context, namespace string
}

func (k *kubeFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file (Kubernetes target; default $KUBECONFIG, ~/.kube/config, in-cluster)")
	c.Flags().StringVar(&k.context, "context", "", "kubeconfig context (Kubernetes target; default target.kubernetes.context or the current one)")
	c.Flags().StringVarP(&k.namespace, "namespace", "n", "", "namespace (Kubernetes target; default target.kubernetes.namespace)")
}

func (f *watchFlags) register(c *cobra.Command, withStart bool) {
	f.kube.register(c)
	c.Flags().StringVarP(&f.file, "file", "f", "deploywatch.yaml", "config file")
	c.Flags().StringVar(&f.version, "version", "", "the release being deployed (commit or tag); default $GITHUB_SHA or $CI_COMMIT_SHA")
	c.Flags().StringVar(&f.report, "report", "", "write the whole watch as JSON to this file")
	c.Flags().StringVarP(&f.output, "output", "o", "text", "progress format: text, or json (one event per line)")
	if withStart {
		c.Flags().StringVar(&f.startedAt, "started-at", "", "when the deploy started: RFC 3339 time, Unix seconds, or a duration ago such as 90s (default now)")
	}
}

func (a *app) runCommand() *cobra.Command {
	var f watchFlags
	c := &cobra.Command{
		Use:   "run [flags] [-- deploy-command args...]",
		Short: "Capture the baseline, run the deploy, then watch it to a verdict",
		Long: `run records the running version, captures the baseline over the window that
ends now, runs the deploy command (the arguments after --, else
target.command.deploy), then follows the timeline to a verdict. A failed
deploy is acted on as on_failure says.`,
		Example: `  deploywatch run -f deploywatch.yaml --version "$GITHUB_SHA" -- ./deploy.sh "$GITHUB_SHA"
  deploywatch run --version v1.4.2 --report report.json   # uses target.command.deploy`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.watch(cmd, f, true, args)
		},
	}
	f.register(c, false)
	return c
}

func (a *app) watchCommand() *cobra.Command {
	var f watchFlags
	c := &cobra.Command{
		Use:   "watch [flags]",
		Short: "Watch a deploy someone else started, to a verdict",
		Long: `watch follows a deploy that was started by something else (kubectl, helm, a
CI step). The baseline is the window that ends when the deploy started
(--started-at, default now).`,
		Example: `  ./deploy.sh && deploywatch watch -f deploywatch.yaml --version abc123
  deploywatch watch --version abc123 --started-at 2026-11-25T10:04:00Z --report report.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.watch(cmd, f, false, nil)
		},
	}
	f.register(c, true)
	return c
}

func (a *app) watch(cmd *cobra.Command, f watchFlags, runDeploy bool, deployArgv []string) error {
	ctx := cmd.Context()
	if f.output != "text" && f.output != "json" {
		return usagef("--output %q: want text or json", f.output)
	}
	log, err := a.logger()
	if err != nil {
		return err
	}
	started, err := parseStartedAt(f.startedAt, time.Now())
	if err != nil {
		return err
	}
	cfg, err := config.LoadFile(f.file)
	if err != nil {
		return err
	}
	version := f.version
	for _, env := range []string{"GITHUB_SHA", "CI_COMMIT_SHA"} {
		if version == "" {
			version, _ = a.env(env)
		}
	}
	if f.report != "" {
		if err := checkWritable(f.report); err != nil {
			return usagef("--report: %v", err)
		}
	}

	src, err := a.source(cfg, log)
	if err != nil {
		return err
	}
	if es, ok := src.(*embedded.Source); ok {
		// Scraping outlives a Ctrl-C: a rollback under way is still judged.
		stopScraping := es.Start()
		defer stopScraping()
	}
	pr := newPrinter(a.stdout, f.output, a.env)
	defer pr.close()
	platform, closePlatform, err := a.platform(ctx, cfg, f.kube, pr.hookLine, deployArgv)
	if err != nil {
		return err
	}
	defer closePlatform()
	disp, err := a.dispatcher(cfg)
	if err != nil {
		return err
	}
	opts := []watch.Option{watch.WithObserver(notify.Observers{pr, disp}), watch.WithLogger(log)}
	if cfg.Verify != nil {
		logs, _ := platform.(verify.LogSource)
		cl, err := verify.New(cfg, logs, a.env)
		if err != nil {
			return err
		}
		opts = append(opts, watch.WithChecklist(cl))
	}
	eng := watch.New(cfg, src, platform, opts...)
	req := watch.Request{
		Version: version, StartedAt: started, RunDeploy: runDeploy,
		TriggeredBy: a.triggeredBy(), Abort: a.abort,
	}
	rep := eng.Run(ctx, req)
	// Notifications never delayed the watch; now they get a bounded time to
	// finish, so the verdict message and the annotation's close are sent.
	disp.Flush(flushTimeout)
	rep.Deliveries = append(rep.Deliveries, disp.Deliveries()...)
	pr.close()
	if f.report != "" {
		if err := rep.WriteFile(f.report); err != nil {
			fmt.Fprintf(a.stderr, "deploywatch: %v\n", err)
		} else if f.output == "text" {
			fmt.Fprintf(a.stdout, "report: %s\n", f.report)
		}
	}
	return &exitError{code: rep.Verdict.ExitCode()}
}

// platform builds the deploy target of the config.
func (a *app) platform(ctx context.Context, cfg *config.Config, kf kubeFlags, out func(hook, line string), deployArgv []string) (watch.Platform, func(), error) {
	if k := cfg.Target.Kubernetes; k != nil {
		kc := *k
		if kf.namespace != "" {
			kc.Namespace = kf.namespace
		}
		if kf.context != "" {
			kc.Context = kf.context
		}
		path := kf.kubeconfig
		if path == "" && kc.Kubeconfig != "" {
			path = cfg.Resolve(kc.Kubeconfig)
		}
		rc, err := kube.RESTConfig(kube.ClientOptions{Kubeconfig: path, Context: kc.Context})
		if err != nil {
			return nil, nil, usagef("%v", err)
		}
		hooks := command.New(config.CommandTarget{
			Deploy: kc.Deploy, Rollback: kc.RollbackCommand, Shell: kc.Shell, Timeouts: kc.Timeouts,
		}, "", out)
		hooks.DeployArgv = deployArgv
		t, err := kube.New(ctx, rc, kc, hooks)
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

// source builds the metric source of the config, or nil without one.
func (a *app) source(cfg *config.Config, log *slog.Logger) (watch.Querier, error) {
	if cfg.Metrics == nil {
		return nil, nil
	}
	if e := cfg.Metrics.Embedded; e != nil {
		src, err := embeddedSource(e, log)
		if err != nil {
			return nil, err
		}
		return src, nil
	}
	token, user, pass, err := cfg.PrometheusCredentials(a.env)
	if err != nil {
		return nil, err
	}
	p := cfg.Metrics.Prometheus
	c, err := prometheus.New(prometheus.Config{
		URL: p.URL, BearerToken: token, Username: user, Password: pass,
		Headers: p.Headers, Timeout: p.Timeout.D(), Retries: p.Retries,
	})
	if err != nil {
		return nil, usagef("metrics.prometheus: %v", err)
	}
	return c, nil
}

// embeddedSource builds the embedded engine of a config section.
func embeddedSource(e *config.Embedded, log *slog.Logger) (*embedded.Source, error) {
	opts := embedded.Options{Retention: e.Retention.D(), Logger: log}
	for _, j := range e.Scrape {
		opts.Scrape = append(opts.Scrape, embedded.ScrapeConfig{
			Job: j.Job, Targets: j.Targets, Interval: j.Interval.D(), Timeout: j.Timeout.D(), Path: j.Path, Scheme: j.Scheme,
		})
	}
	src, err := embedded.New(opts)
	if err != nil {
		return nil, usagef("metrics.embedded: %v", err)
	}
	return src, nil
}

// triggeredBy names who started the deploy, from CI variables if present.
func (a *app) triggeredBy() string {
	for _, k := range []string{"GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_USER_ID", "USER"} {
		if v, ok := a.env(k); ok && v != "" {
			return v
		}
	}
	return ""
}

// parseStartedAt reads --started-at.
func parseStartedAt(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if sec, err := strconv.ParseFloat(s, 64); err == nil && sec > 1e9 {
		return time.Unix(0, int64(sec*1e9)), nil
	}
	if d, err := time.ParseDuration(strings.TrimSuffix(strings.TrimSpace(s), " ago")); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("--started-at %q: want an RFC 3339 time (2026-11-25T10:04:00Z), Unix seconds, or a duration ago (90s)", s)
}

func checkWritable(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}
