package cli

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/watch"
	"github.com/deploywatch/deploywatch/internal/wire"
)

func (a *app) analyzeCommand() *cobra.Command {
	var (
		file, version, previous, deployedAt, until, output, report string
	)
	c := &cobra.Command{
		Use:   "analyze [flags]",
		Short: "Judge a past deploy from the metric source's history: the verdict and when",
		Long: `analyze runs a watch's whole timeline over a deploy that already happened,
reading the metric source's history as the watch would have read it live:
the baseline before --deployed-at, the warm-up, every look of the monitor
window (ended early by --until). It prints the verdict the config would
have given and when, with every check's evidence. Nothing is deployed,
rolled back or notified.

The exit code is the verdict's, as for watch: 0 stable, 1 failed,
3 inconclusive; 2 for a usage error, a config error, or a deploy whose
warm-up is not over.`,
		Example: `  deploywatch analyze -f deploywatch.yaml --version v1.4.2 --deployed-at 2026-11-25T10:04:00Z
  deploywatch analyze --version abc123 --deployed-at 1764064800 --until 2026-11-25T10:09:00Z -o json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			now := time.Now()
			at, err := parseTime(deployedAt, "--deployed-at")
			if err != nil {
				return err
			}
			past := watch.Past{Version: version, PreviousVersion: previous, DeployedAt: at}
			if until != "" {
				if past.Until, err = parseTime(until, "--until"); err != nil {
					return err
				}
				if !past.Until.After(at) {
					return usagef("--until %s is not after --deployed-at %s", until, deployedAt)
				}
			}
			cfg, src, err := a.historySource(cmd.Context(), file)
			if err != nil {
				return err
			}
			pr := newPrinter(a.stdout, output, a.env)
			rep, err := watch.Analyze(cmd.Context(), watch.SpecFor(cfg), src, past, now, watch.WithObserver(pr))
			pr.close()
			if err != nil {
				return &usageError{err}
			}
			if report != "" {
				if err := rep.WriteFile(report); err != nil {
					return err
				}
			}
			if output == "text" {
				fmt.Fprintf(a.stdout, "would have been: %s\n", verdictLine(rep))
			}
			return &exitError{code: rep.Verdict.ExitCode()}
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "deploywatch.yaml", "config file")
	c.Flags().StringVar(&version, "version", "", "the version that was deployed (for the report)")
	c.Flags().StringVar(&previous, "previous-version", "", "the version it replaced (for the report)")
	c.Flags().StringVar(&deployedAt, "deployed-at", "", "when the deploy began: RFC 3339 or Unix seconds (required)")
	c.Flags().StringVar(&until, "until", "", "end the monitor window here, if before its end: RFC 3339 or Unix seconds")
	c.Flags().StringVarP(&output, "output", "o", "text", "text, or json (one event per line)")
	c.Flags().StringVar(&report, "report", "", "write the analysis as a report JSON file")
	_ = c.MarkFlagRequired("deployed-at")
	return c
}

func (a *app) backtestCommand() *cobra.Command {
	var file, deploys, output string
	c := &cobra.Command{
		Use:   "backtest [flags]",
		Short: "Judge a list of past deploys: what the config would have rolled back, and how well",
		Long: `backtest analyzes every deploy of a CSV file (see analyze) and prints a
table of verdicts and detection times. The file has a header row with the
columns version and deployed_at (RFC 3339 or Unix seconds), and optionally
outcome (good or bad): where outcomes are known, it also prints precision
(of the deploys the config would have failed, the share that were bad) and
recall (of the bad deploys, the share it would have failed), so a team can
see how many of last month's deploys a config would have rolled back
before turning rollbacks on.

Exit 0 when the backtest ran, 2 for a usage error, a config error or a
file that cannot be read.`,
		Example: `  deploywatch backtest -f deploywatch.yaml --deploys deploys.csv
  deploywatch backtest --deploys deploys.csv -o json | jq '.summary'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			rows, err := readDeploys(deploys)
			if err != nil {
				return err
			}
			cfg, src, err := a.historySource(cmd.Context(), file)
			if err != nil {
				return err
			}
			bt := backtest(cmd.Context(), watch.SpecFor(cfg), src, rows, time.Now())
			if output == "json" {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(bt)
			}
			bt.print(a.stdout)
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "deploywatch.yaml", "config file")
	c.Flags().StringVar(&deploys, "deploys", "", "CSV of past deploys: version, deployed_at[, outcome] (required)")
	c.Flags().StringVarP(&output, "output", "o", "text", "text, or json")
	_ = c.MarkFlagRequired("deploys")
	return c
}

// historySource loads the config and its metric source.
func (a *app) historySource(ctx context.Context, file string) (*config.Config, watch.Querier, error) {
	cfg, err := config.LoadFile(file)
	if err != nil {
		return nil, nil, err
	}
	log, err := a.logger()
	if err != nil {
		return nil, nil, err
	}
	if m := cfg.Metrics; m != nil && m.Language() == config.LanguageValues {
		return nil, nil, &usageError{fmt.Errorf("%s: %s answers for the present only: analyze and backtest need a source with history (metrics.prometheus, metrics.embedded or metrics.datadog)", file, m.SourceField())}
	}
	src, err := wire.Source(ctx, cfg, a.env, log)
	if err != nil {
		return nil, nil, usageIfConfig(err)
	}
	return cfg, src, nil
}

// parseTime reads a flag's time: RFC 3339 or Unix seconds.
func parseTime(s, flag string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s)); err == nil {
		return t, nil
	}
	sec, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	switch {
	case err != nil || math.IsNaN(sec) || math.IsInf(sec, 0):
	case sec >= 1e11:
		return time.Time{}, usagef("%s %q: too large for Unix seconds (milliseconds? divide by 1000)", flag, s)
	case sec > 1e8:
		return time.Unix(0, int64(sec*1e9)).UTC(), nil
	}
	return time.Time{}, usagef("%s %q: want an RFC 3339 time (2026-11-25T10:04:00Z) or Unix seconds", flag, s)
}

// verdictLine says a report's verdict and when it was reached.
func verdictLine(rep *watch.Report) string {
	s := string(rep.Verdict)
	if rep.DetectedAt != nil {
		s += fmt.Sprintf(" %s after the deploy", rep.DetectedAt.Sub(rep.Deploy.StartedAt).Round(time.Second))
	}
	return s + ": " + rep.Reason
}

// maxDeploysFile bounds a backtest's CSV.
const maxDeploysFile = 64 << 20

// pastDeploy is one row of a backtest's CSV.
type pastDeploy struct {
	line       int
	version    string
	deployedAt time.Time
	outcome    string // good, bad or ""
}

// readDeploys reads a backtest's CSV, naming the line and column of any
// problem.
func readDeploys(path string) ([]pastDeploy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usagef("--deploys: %v", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxDeploysFile {
		return nil, usagef("%s: %d bytes, more than the %d MiB a backtest reads", path, st.Size(), maxDeploysFile>>20)
	}
	lr := &io.LimitedReader{R: f, N: maxDeploysFile + 1}
	r := csv.NewReader(lr)
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		return nil, usagef("%s: a header row is needed (version,deployed_at[,outcome]): %v", path, err)
	}
	col := map[string]int{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) // a spreadsheet's byte-order mark
		if _, dup := col[name]; dup {
			return nil, usagef("%s:1: the column %s is named twice", path, name)
		}
		col[name] = i
	}
	for _, need := range []string{"version", "deployed_at"} {
		if _, ok := col[need]; !ok {
			return nil, usagef("%s:1: no %s column (the header has %s)", path, need, strings.Join(header, ", "))
		}
	}
	var rows []pastDeploy
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, usagef("%s: %v", path, err)
		}
		line, _ := r.FieldPos(0)
		d := pastDeploy{line: line, version: rec[col["version"]]}
		if d.deployedAt, err = parseTime(rec[col["deployed_at"]], fmt.Sprintf("%s:%d: deployed_at", path, line)); err != nil {
			return nil, err
		}
		if i, ok := col["outcome"]; ok {
			d.outcome = strings.ToLower(strings.TrimSpace(rec[i]))
			if d.outcome != "" && d.outcome != "good" && d.outcome != "bad" {
				return nil, usagef("%s:%d: outcome %q: want good, bad or empty", path, line, rec[i])
			}
		}
		rows = append(rows, d)
	}
	if lr.N <= 0 {
		return nil, usagef("%s: more than the %d MiB a backtest reads", path, maxDeploysFile>>20)
	}
	if len(rows) == 0 {
		return nil, usagef("%s: no deploys after the header", path)
	}
	return rows, nil
}

// backtestResult is a backtest's table and summary.
type backtestResult struct {
	Deploys []backtestRow   `json:"deploys"`
	Summary backtestSummary `json:"summary"`
}

type backtestRow struct {
	Version    string    `json:"version"`
	DeployedAt time.Time `json:"deployed_at"`
	Outcome    string    `json:"outcome,omitempty"`
	// Verdict is stable, failed, inconclusive, or skipped (not over yet,
	// or the analysis could not run: Reason says).
	Verdict         string   `json:"verdict"`
	DetectedSeconds *float64 `json:"detected_seconds,omitempty"`
	Reason          string   `json:"reason"`
}

type backtestSummary struct {
	Deploys      int `json:"deploys"`
	Failed       int `json:"failed"`
	Stable       int `json:"stable"`
	Inconclusive int `json:"inconclusive"`
	Skipped      int `json:"skipped"`
	// Precision and Recall, where outcomes are known (null otherwise).
	Precision *float64 `json:"precision"`
	Recall    *float64 `json:"recall"`
	// MedianDetectSeconds and WorstDetectSeconds of the failed deploys.
	MedianDetectSeconds *float64 `json:"median_detect_seconds"`
	WorstDetectSeconds  *float64 `json:"worst_detect_seconds"`
}

func backtest(ctx context.Context, spec watch.Spec, src watch.Querier, rows []pastDeploy, now time.Time) backtestResult {
	var out backtestResult
	var detects []float64
	var tp, fp, fn int
	for _, d := range rows {
		row := backtestRow{Version: d.version, DeployedAt: d.deployedAt, Outcome: d.outcome}
		if ctx.Err() != nil {
			row.Verdict, row.Reason = "skipped", "interrupted"
			out.Summary.Skipped++
			out.Deploys = append(out.Deploys, row)
			continue
		}
		rep, err := watch.Analyze(ctx, spec, src, watch.Past{Version: d.version, DeployedAt: d.deployedAt}, now)
		switch {
		case err != nil:
			row.Verdict, row.Reason = "skipped", err.Error()
			out.Summary.Skipped++
		default:
			row.Verdict, row.Reason = string(rep.Verdict), rep.Reason
			if rep.DetectedAt != nil {
				s := rep.DetectedAt.Sub(d.deployedAt).Seconds()
				row.DetectedSeconds = &s
			}
			switch rep.Verdict {
			case watch.Failed:
				out.Summary.Failed++
				if row.DetectedSeconds != nil {
					detects = append(detects, *row.DetectedSeconds)
				}
			case watch.Stable:
				out.Summary.Stable++
			default:
				out.Summary.Inconclusive++
			}
			failed := rep.Verdict == watch.Failed
			switch {
			case failed && d.outcome == "bad":
				tp++
			case failed && d.outcome == "good":
				fp++
			case !failed && d.outcome == "bad":
				fn++
			}
		}
		out.Deploys = append(out.Deploys, row)
	}
	out.Summary.Deploys = len(rows)
	if tp+fp > 0 {
		p := float64(tp) / float64(tp+fp)
		out.Summary.Precision = &p
	}
	if tp+fn > 0 {
		r := float64(tp) / float64(tp+fn)
		out.Summary.Recall = &r
	}
	if len(detects) > 0 {
		sorted := append([]float64(nil), detects...)
		slices.Sort(sorted)
		med, worst := sorted[len(sorted)/2], sorted[len(sorted)-1]
		if len(sorted)%2 == 0 {
			med = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
		}
		out.Summary.MedianDetectSeconds, out.Summary.WorstDetectSeconds = &med, &worst
	}
	return out
}

func (b backtestResult) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tDEPLOYED AT\tOUTCOME\tVERDICT\tDETECTED\tREASON")
	for _, r := range b.Deploys {
		det := "-"
		if r.DetectedSeconds != nil {
			det = config.FormatDuration(time.Duration(*r.DetectedSeconds * float64(time.Second)).Round(time.Second))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Version, r.DeployedAt.UTC().Format(time.RFC3339), cmp.Or(r.Outcome, "-"), r.Verdict, det, r.Reason)
	}
	tw.Flush()
	s := b.Summary
	fmt.Fprintf(w, "\n%d deploys: %d failed, %d stable, %d inconclusive, %d skipped\n", s.Deploys, s.Failed, s.Stable, s.Inconclusive, s.Skipped)
	if s.Precision != nil || s.Recall != nil {
		fmt.Fprintf(w, "precision %s (of the deploys it would have failed, the share that were bad), recall %s (of the bad deploys, the share it would have failed)\n",
			share(s.Precision), share(s.Recall))
	}
	if s.MedianDetectSeconds != nil {
		fmt.Fprintf(w, "detection: median %.0fs, worst %.0fs\n", *s.MedianDetectSeconds, *s.WorstDetectSeconds)
	}
}

func share(p *float64) string {
	if p == nil {
		return "unknown"
	}
	return fmt.Sprintf("%.0f%%", 100**p)
}
