// Package github reports a watch to GitHub Actions: a Markdown job summary
// of the timeline and checks, step outputs, and error annotations.
package github

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/notify"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// Actions writes to the files and stream of a GitHub Actions step.
type Actions struct {
	summaryPath, outputPath string
	stdout                  io.Writer
}

var _ notify.Sink = (*Actions)(nil)

// FromEnv returns the sink when running in GitHub Actions
// (GITHUB_ACTIONS=true), else nil.
func FromEnv(env func(string) (string, bool), stdout io.Writer) *Actions {
	if v, _ := env("GITHUB_ACTIONS"); v != "true" {
		return nil
	}
	summary, _ := env("GITHUB_STEP_SUMMARY")
	output, _ := env("GITHUB_OUTPUT")
	return &Actions{summaryPath: summary, outputPath: output, stdout: stdout}
}

// RunURL is the link to the current run, from the standard variables.
func RunURL(env func(string) (string, bool)) string {
	server, _ := env("GITHUB_SERVER_URL")
	repo, _ := env("GITHUB_REPOSITORY")
	id, _ := env("GITHUB_RUN_ID")
	if server == "" || repo == "" || id == "" {
		return ""
	}
	return fmt.Sprintf("%s/%s/actions/runs/%s", server, repo, id)
}

// Name is "github".
func (a *Actions) Name() string { return "github" }

// Wants takes the verdict only.
func (a *Actions) Wants(k event.Kind) bool { return k == event.Verdict }

// Send writes the summary, the outputs and, for a failure, annotations.
func (a *Actions) Send(_ context.Context, m notify.Message) error {
	r := m.Report
	if r == nil {
		return nil
	}
	if err := appendFile(a.outputPath, Outputs(r)); err != nil {
		return fmt.Errorf("GITHUB_OUTPUT: %w", err)
	}
	if err := appendFile(a.summaryPath, Summary(m)); err != nil {
		return fmt.Errorf("GITHUB_STEP_SUMMARY: %w", err)
	}
	if r.Verdict != watch.Stable && a.stdout != nil {
		title := m.Title()
		fmt.Fprintf(a.stdout, "::error title=%s::%s\n", escapeProperty(title), escapeData(r.Reason))
		if rb := r.Rollback; rb != nil && rb.Performed && !rb.OK {
			fmt.Fprintf(a.stdout, "::error title=Rollback failed::%s\n", escapeData(rb.Error))
		}
	}
	return nil
}

func appendFile(path, text string) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(text)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return werr
}

// Outputs are the step outputs, one name=value line each, including the
// seed's error_rate_exceeded and unhealthy_pods.
func Outputs(r *watch.Report) string {
	rolledBack := r.Rollback != nil && r.Rollback.Performed && r.Rollback.OK
	detected := ""
	if r.DetectedAt != nil {
		detected = r.DetectedAt.UTC().Format("2006-01-02T15:04:05Z")
	}
	failed := func(name string) bool {
		for _, c := range r.Checks {
			if c.Name == name && c.Verdict == judge.Fail {
				return true
			}
		}
		return false
	}
	lines := []string{
		"verdict=" + string(r.Verdict),
		fmt.Sprintf("rolled_back=%t", rolledBack),
		"detected_at=" + detected,
		fmt.Sprintf("error_rate_exceeded=%t", failed("error_rate")),
		fmt.Sprintf("unhealthy_pods=%t", failed(watch.PodsCheck)),
		"previous_version=" + r.Deploy.PreviousVersion,
		"reason=" + strings.ReplaceAll(strings.ReplaceAll(r.Reason, "\r", " "), "\n", " "),
	}
	return strings.Join(lines, "\n") + "\n"
}

// Summary is the job summary: verdict, timeline and checks in Markdown.
func Summary(m notify.Message) string {
	r := m.Report
	var b strings.Builder
	icon := map[watch.Verdict]string{watch.Stable: "✅", watch.Failed: "❌", watch.Inconclusive: "❔"}[r.Verdict]
	fmt.Fprintf(&b, "## %s %s\n\n%s\n\n", icon, m.Title(), md(r.Reason))
	if rb := r.Rollback; rb != nil && rb.Performed {
		status := "rolled back"
		if !rb.OK {
			status = "**rollback failed**: " + md(rb.Error)
		}
		fmt.Fprintf(&b, "Rollback to `%s`: %s in %s. %s\n\n", rb.Revision, status, rb.Duration, md(rb.Note))
	}
	b.WriteString("| phase | outcome | reason |\n| --- | --- | --- |\n")
	for _, p := range r.Phases {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", p.Name, p.Outcome, md(p.Reason))
	}
	b.WriteString("\n| check | verdict | value | baseline | rule | window |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | `%s` | %s |\n", c.Name, c.Verdict,
			watch.FormatValue(c.Value, c.Unit), watch.FormatValue(c.Baseline, c.Unit), md(c.Rule), c.Window)
	}
	if m.Check != nil {
		fmt.Fprintf(&b, "\nDeciding query:\n\n```promql\n%s\n```\n", m.Check.Query)
	}
	b.WriteString("\n")
	return b.String()
}

func md(s string) string { return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s) }

// Workflow command escaping (toolkit/core command.ts).
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
