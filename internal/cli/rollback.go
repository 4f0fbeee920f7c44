package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/platform/command"
	"github.com/deploywatch/deploywatch/internal/watch"
	"github.com/deploywatch/deploywatch/internal/wire"
)

func (a *app) rollbackCommand() *cobra.Command {
	var (
		file     string
		revision int64
		dryRun   bool
		kf       kubeFlags
	)
	c := &cobra.Command{
		Use:   "rollback [flags]",
		Short: "Roll the target back by hand (kubectl rollout undo semantics on Kubernetes)",
		Long: `rollback undoes a deploy by hand. On a Kubernetes target (Deployment,
StatefulSet or DaemonSet) it does what 'kubectl rollout undo' does:
--to-revision N (default: the previous revision), a paused Deployment is
refused, a template that already matches is left alone. A workload managed
by Argo CD or Flux is refused unless target.kubernetes.gitops is ignore. On
a command target it runs target.command.rollback. On Kubernetes it then
follows the rollback until the old revision is rolled out again (deleting
a StatefulSet's stuck pods of the bad revision, which it would wait on
forever). --dry-run says what would happen and changes nothing.`,
		Example: `  deploywatch rollback -f deploywatch.yaml --to-revision 3 --dry-run
  deploywatch rollback -f deploywatch.yaml`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadFile(file)
			if err != nil {
				return err
			}
			return a.rollback(cmd.Context(), cfg, kf, revision, dryRun)
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "deploywatch.yaml", "config file")
	c.Flags().Int64Var(&revision, "to-revision", 0, "the revision to return to (Kubernetes; default the previous one)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be done, change nothing")
	registerKubeFlags(c, &kf)
	return c
}

func (a *app) rollback(ctx context.Context, cfg *config.Config, kf kubeFlags, revision int64, dryRun bool) error {
	w := a.stdout
	if cfg.Target.Kubernetes == nil {
		cmdCfg := cfg.Target.Command
		if cmdCfg.Rollback == "" {
			return usagef("target.command.rollback is not set")
		}
		if revision != 0 {
			return usagef("--to-revision is for Kubernetes targets")
		}
		if dryRun {
			fmt.Fprintf(w, "would run: %s -c %q\n", cmdCfg.Shell, cmdCfg.Rollback)
			return nil
		}
		t := command.New(*cmdCfg, cfg.Resolve(cmdCfg.Dir), func(hook, line string) { fmt.Fprintf(w, "%s | %s\n", hook, line) })
		if _, err := t.Rollback(ctx, watch.Deploy{Service: cfg.Service, Environment: cfg.Environment}); err != nil {
			return &exitError{code: ExitFailed, err: err}
		}
		fmt.Fprintln(w, "rolled back")
		return nil
	}
	t, err := wire.KubeTarget(ctx, cfg, kf, nil, nil)
	if err != nil {
		return usageIfConfig(err)
	}
	defer t.Close()
	if who := t.GitOpsManager(ctx); who != "" && cfg.Target.Kubernetes.GitOps == config.GitOpsRespect {
		return &exitError{code: ExitFailed, err: fmt.Errorf("the %s is managed by %s, which would revert an undo: roll back in Git, or set target.kubernetes.gitops: ignore", t.Kind(), who)}
	}
	res, err := t.Undo(ctx, revision, dryRun)
	if err != nil {
		return &exitError{code: ExitFailed, err: err}
	}
	fmt.Fprintln(w, res.Summary)
	if dryRun && !res.Skipped {
		fmt.Fprintf(w, "patch (%s):\n%s\n", res.PatchType, res.Patch)
	}
	return nil
}
