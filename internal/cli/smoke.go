package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/deploywatch/deploywatch/internal/smoke"
)

func (a *app) smokeCommand() *cobra.Command {
	var (
		file, baseURL, junit, output string
		concurrency                  int
	)
	c := &cobra.Command{
		Use:   "smoke -f smoke.yaml --base-url URL",
		Short: "Run a smoke test suite against a service",
		Long: `smoke runs the checks of a suite file against a base URL: each sends a
request and states what the answer must be (status codes, jq assertions on
the JSON body, body text or patterns, headers, latency). Checks may capture
values (a token, an id) for later checks, and run concurrently where they do
not depend on each other.

Exit 0 when every check passed, 1 when any failed (a request that cannot be
made at all is a failed check), 2 for a bad suite or flags.`,
		Example: `  deploywatch smoke -f examples/smoke.yaml --base-url https://api.example.com
  deploywatch smoke -f smoke.yaml --base-url "$API_URL" --junit smoke.xml --output json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usagef("--output %q: want text or json", output)
			}
			s, err := smoke.LoadFile(file)
			if err != nil {
				return err
			}
			w := a.stdout
			opts := smoke.Options{BaseURL: baseURL, Env: a.env, Concurrency: concurrency}
			if output == "text" {
				opts.OnResult = func(r smoke.Result) { fmt.Fprintln(w, smoke.Line(r)) }
			}
			rep, err := s.Run(cmd.Context(), opts)
			if err != nil {
				return usagef("%v", err)
			}
			if output == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(w, rep.Summary())
			}
			if junit != "" {
				f, err := os.Create(junit)
				if err != nil {
					return usagef("--junit: %v", err)
				}
				werr := rep.WriteJUnit(f, filepath.Base(file))
				if cerr := f.Close(); werr == nil {
					werr = cerr
				}
				if werr != nil {
					return fmt.Errorf("writing %s: %w", junit, werr)
				}
			}
			if !rep.OK() {
				return &exitError{code: ExitFailed}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "smoke.yaml", "suite file")
	c.Flags().StringVar(&baseURL, "base-url", "", "the service's base URL (default: the suite's base_url)")
	c.Flags().StringVar(&junit, "junit", "", "also write JUnit XML to this file")
	c.Flags().StringVarP(&output, "output", "o", "text", "text, or json")
	c.Flags().IntVar(&concurrency, "concurrency", 0, "checks run at once (default: the suite's, 8)")
	return c
}
