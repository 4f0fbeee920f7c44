package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/deploywatch/deploywatch/internal/config"
)

func (a *app) validateCommand() *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "validate [flags]",
		Short: "Check a config and print it with every default filled in",
		Long: `validate reads the config strictly (unknown or duplicate keys are errors),
parses every PromQL expression, and prints the effective configuration:
what a watch would use, default checks included. Problems are listed with
file:line:column, and the exit code is 2.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadFile(file)
			if err != nil {
				return err
			}
			out, err := yaml.Marshal(cfg)
			if err != nil {
				return fmt.Errorf("printing the effective config: %w", err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "# %s is valid. Effective configuration, defaults filled in:\n", file)
			for _, s := range cfg.Skipped {
				fmt.Fprintf(w, "# check %s is skipped: %s\n", s.Name, s.Reason)
			}
			if cfg.Metrics != nil && cfg.Metrics.ScrapeInterval == 0 {
				fmt.Fprintln(w, "# metrics.scrape_interval is measured when a watch starts; windows follow from it")
			}
			_, err = w.Write(out)
			return err
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "deploywatch.yaml", "config file")
	return c
}

// version is set at build time with -ldflags "-X .../internal/cli.version=v1.2.3".
var version = ""

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print deploywatch's own version",
		Args:  usageArgs(cobra.NoArgs),
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "deploywatch %s %s %s/%s\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}

// buildVersion is deploywatch's version and commit, from -ldflags or the
// build info.
func buildVersion() string {
	v, commit := version, ""
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				commit = s.Value[:12]
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if commit != "" {
		v += " (" + commit + ")"
	}
	return v
}
