package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/metrics/embedded"
	"github.com/deploywatch/deploywatch/internal/notify"
	"github.com/deploywatch/deploywatch/internal/verify"
	"github.com/deploywatch/deploywatch/internal/watch"
	"github.com/deploywatch/deploywatch/internal/wire"
)

// usageIfConfig makes an error of what the config asks for a usage error
// (exit 2).
func usageIfConfig(err error) error {
	if errors.Is(err, wire.ErrConfig) {
		return &usageError{err}
	}
	return err
}

// watchFlags are shared by run and watch.
type watchFlags struct {
	file      string
	version   string
	report    string
	output    string
	startedAt string
	state     string
	resume    string
	kube      kubeFlags

	server         string
	serverTokenEnv string
	commitTime     string
}

// kubeFlags are kubectl's connection flags, for a Kubernetes target.
type kubeFlags = wire.KubeOptions

func registerKubeFlags(c *cobra.Command, k *kubeFlags) {
	c.Flags().StringVar(&k.Kubeconfig, "kubeconfig", "", "kubeconfig file (Kubernetes target; default $KUBECONFIG, ~/.kube/config, in-cluster)")
	c.Flags().StringVar(&k.Context, "context", "", "kubeconfig context (Kubernetes target; default target.kubernetes.context or the current one)")
	c.Flags().StringVarP(&k.Namespace, "namespace", "n", "", "namespace (Kubernetes target; default target.kubernetes.namespace)")
}

func (f *watchFlags) register(c *cobra.Command, isWatch bool) {
	registerKubeFlags(c, &f.kube)
	c.Flags().StringVarP(&f.file, "file", "f", "deploywatch.yaml", "config file")
	c.Flags().StringVar(&f.version, "version", "", "the release being deployed (commit or tag); default $GITHUB_SHA or $CI_COMMIT_SHA")
	c.Flags().StringVar(&f.report, "report", "", "write the whole watch as JSON to this file, after every phase and at the end")
	c.Flags().StringVarP(&f.output, "output", "o", "text", "progress format: text, or json (one event per line)")
	c.Flags().StringVar(&f.state, "state", "", "keep the watch's state in this file as it goes, so that 'watch --resume FILE' can take it up if this process dies")
	c.Flags().StringVar(&f.server, "server", "", "also record the watch in the history of this deploywatch serve (its base URL, e.g. https://deploywatch.example.com)")
	c.Flags().StringVar(&f.serverTokenEnv, "server-token-env", defaultServerTokenEnv, "the environment variable that holds the ingest token for --server")
	c.Flags().StringVar(&f.commitTime, "commit-time", "", "when the deployed commit was made, for lead time in --server's history: RFC 3339 or Unix seconds (default $"+commitTimeEnv+")")
	if isWatch {
		c.Flags().StringVar(&f.startedAt, "started-at", "", "when the deploy started: RFC 3339 time, Unix seconds, or a duration ago such as 90s (default now)")
		c.Flags().StringVar(&f.resume, "resume", "", "take up the watch saved in this state file (by --state) where it was: no other flag is needed")
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
deploy is acted on as on_failure says.

With --state FILE the watch survives its own death: if this process is
killed, 'deploywatch watch --resume FILE' takes it up where it was, and
never runs the deploy command or a rollback twice.`,
		Example: `  deploywatch run -f deploywatch.yaml --version "$GITHUB_SHA" -- ./deploy.sh "$GITHUB_SHA"
  deploywatch run --version v1.4.2 --report report.json   # uses target.command.deploy
  deploywatch run --version v2 --state watch.state -- ./deploy.sh v2`,
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
		Short: "Watch a deploy someone else started, to a verdict; or resume a saved watch",
		Long: `watch follows a deploy that was started by something else (kubectl, helm, a
CI step). The baseline is the window that ends when the deploy started
(--started-at, default now).

watch --resume FILE takes up a watch saved with --state by a process that
died: the same deploy, baseline, pinned rollback target, phase timings and
report file. The config file must be unchanged. A watch that had already
ended prints its verdict and exits with its code.`,
		Example: `  ./deploy.sh && deploywatch watch -f deploywatch.yaml --version abc123
  deploywatch watch --version abc123 --started-at 2026-11-25T10:04:00Z --report report.json
  deploywatch watch --resume watch.state`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.resume != "" {
				return a.resume(cmd, f)
			}
			return a.watch(cmd, f, false, nil)
		},
	}
	f.register(c, true)
	return c
}

// origin is what the CLI keeps in a watch's state to build the watch
// again in another process.
type origin struct {
	Config configRef `json:"config"`
	// Report is the report file, absolute.
	Report string    `json:"report,omitempty"`
	Kube   kubeFlags `json:"kube,omitzero"`
	// DeployArgv is run's command after --: a watch saved before its
	// deploy began runs it when resumed.
	DeployArgv []string `json:"deploy_argv,omitempty"`
	// Server is where the watch is recorded (--server).
	Server *serverRef `json:"server,omitempty"`
}

// configRef names the config file and what it held.
type configRef struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

func (a *app) watch(cmd *cobra.Command, f watchFlags, runDeploy bool, deployArgv []string) error {
	ctx := cmd.Context()
	if err := checkOutput(f.output); err != nil {
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
	version := a.version(f.version)
	o := origin{Kube: f.kube, DeployArgv: deployArgv}
	if o.Server, err = a.serverOf(f); err != nil {
		return err
	}
	if o.Config.Path, err = filepath.Abs(f.file); err != nil {
		return usagef("-f %s: %v", f.file, err)
	}
	o.Config.SHA256 = cfg.Digest
	if f.report != "" {
		if o.Report, err = absWritable(f.report); err != nil {
			return usagef("--report: %v", err)
		}
	}
	var state *stateFile
	if f.state != "" {
		if o.Report != "" && sameFile(o.Report, f.state) {
			return usagef("--state and --report name the same file %s: the report would overwrite the state", f.state)
		}
		if state, err = createStateFile(f.state); err != nil {
			return err
		}
		defer state.close()
	}
	originJSON, err := marshalOrigin(o)
	if err != nil {
		return err
	}
	req := watch.Request{
		Version: version, StartedAt: started, RunDeploy: runDeploy,
		TriggeredBy: a.triggeredBy(), Origin: originJSON,
	}
	return a.follow(ctx, cfg, f.output, o, state, func(eng *watch.Engine) (*watch.Report, error) {
		return eng.Run(ctx, req), nil
	})
}

// follow builds what a watch needs from the config (source, platform,
// sinks, checklist), runs it with start, and ends with its exit code. The
// report is written at every checkpoint and at the end; the state file,
// when there is one, at every checkpoint.
func (a *app) follow(ctx context.Context, cfg *config.Config, output string, o origin, state *stateFile,
	start func(*watch.Engine) (*watch.Report, error)) error {
	log, err := a.logger()
	if err != nil {
		return err
	}
	src, err := wire.Source(ctx, cfg, a.env, log)
	if err != nil {
		return usageIfConfig(err)
	}
	if es, ok := src.(*embedded.Source); ok {
		// Scraping outlives a Ctrl-C: a rollback under way is still judged.
		stopScraping := es.Start()
		defer stopScraping()
	}
	pr := newPrinter(a.stdout, output, a.env)
	defer pr.close()
	platform, closePlatform, err := wire.Platform(ctx, cfg, o.Kube, pr.hookLine, o.DeployArgv)
	if err != nil {
		return usageIfConfig(err)
	}
	defer closePlatform()
	disp, err := a.dispatcher(cfg)
	if err != nil {
		return err
	}
	server, err := a.startIngest(o.Server)
	if err != nil {
		return err
	}
	synthetic, err := a.trafficFor(cfg)
	if err != nil {
		return err
	}
	observers := notify.Observers{pr, disp}
	if synthetic != nil {
		// Before the printer sees the verdict: the traffic stops first.
		observers = append(notify.Observers{synthetic}, observers...)
		defer synthetic.stop()
	}
	cp := &checkpointer{state: state, report: o.Report, deliveries: disp.Deliveries, stderr: a.stderr}
	if server != nil {
		observers = append(observers, server)
		cp.server = server
	}
	opts := []watch.Option{watch.WithObserver(observers), watch.WithLogger(log),
		watch.WithCheckpoint(cp), watch.WithAbort(a.abort)}
	if cfg.Verify != nil || src != nil {
		cl, err := verify.New(cfg, wire.ChecklistSources(src, platform), a.env)
		if err != nil {
			return err
		}
		opts = append(opts, watch.WithChecklist(cl))
	}
	eng := watch.New(watch.SpecFor(cfg), src, platform, opts...)
	rep, err := start(eng)
	if err != nil {
		disp.Flush(0)
		if server != nil {
			server.Close(nil, 0)
		}
		return err
	}
	if synthetic != nil {
		rep.Traffic = synthetic.stop()
	}
	// Notifications never delayed the watch; now they get a bounded time to
	// finish, so the verdict message and the annotation's close are sent.
	disp.Flush(flushTimeout)
	rep.Deliveries = append(rep.Deliveries, disp.Deliveries()...)
	if server != nil {
		// The history gets the report with the notifications' outcomes.
		d := server.Close(rep, flushTimeout)
		if !d.OK {
			fmt.Fprintf(a.stderr, "deploywatch: %s\n", d.Error)
		}
		rep.Deliveries = append(rep.Deliveries, d)
	}
	pr.close()
	if o.Report != "" {
		if err := rep.WriteFile(o.Report); err != nil {
			fmt.Fprintf(a.stderr, "deploywatch: %v\n", err)
		} else if output == "text" {
			fmt.Fprintf(a.stdout, "report: %s\n", o.Report)
		}
	}
	return &exitError{code: rep.Verdict.ExitCode()}
}

// checkpointer writes the report file and the state file at every
// checkpoint of the engine, with the deliveries made so far. Only the state
// file's failure is the engine's to know (it may not deploy without it);
// the report's is said once here.
type checkpointer struct {
	state      *stateFile
	report     string
	deliveries func() []watch.Delivery
	stderr     io.Writer
	reportErr  bool
	// server, with --server, is sent the report as it grows.
	server watch.Checkpointer
}

func (c *checkpointer) Checkpoint(s *watch.State) error {
	s.Report.Deliveries = append(slices.Clone(s.Report.Deliveries), c.deliveries()...)
	if c.report != "" {
		if err := s.Report.WriteFile(c.report); err != nil && !c.reportErr {
			c.reportErr = true
			fmt.Fprintf(c.stderr, "deploywatch: %v\n", err)
		}
	}
	if c.server != nil {
		_ = c.server.Checkpoint(s) // never fails: it queues
	}
	if c.state != nil {
		return s.WriteFile(c.state.path)
	}
	return nil
}

// sameFile reports whether two paths name one file (or would).
func sameFile(a, b string) bool {
	a, _ = filepath.Abs(a)
	b, _ = filepath.Abs(b)
	if a == b {
		return true
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// version is --version, else the CI's commit.
func (a *app) version(flag string) string {
	version := flag
	for _, env := range []string{"GITHUB_SHA", "CI_COMMIT_SHA"} {
		if version == "" {
			version, _ = a.env(env)
		}
	}
	return version
}

func checkOutput(output string) error {
	if output != "text" && output != "json" {
		return usagef("--output %q: want text or json", output)
	}
	return nil
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

// absWritable returns path made absolute, once its directory is known to
// exist.
func absWritable(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(abs)
	st, err := os.Stat(dir)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s is not a directory", dir)
	}
	return abs, nil
}
