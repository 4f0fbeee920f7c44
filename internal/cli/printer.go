package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// printer shows a watch to a person or a program. It is an Observer, and
// also receives hook output from the platform's goroutines.
type printer struct {
	mu     sync.Mutex
	w      io.Writer
	json   bool
	live   bool // a terminal: keep a status line at the bottom
	color  bool
	status string // the live status line currently shown
	phase  string
	began  time.Time
	checks []*watch.CheckResult
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

var _ watch.Observer = (*printer)(nil)

func newPrinter(w io.Writer, output string, env func(string) (string, bool)) *printer {
	p := &printer{w: w, json: output == "json", began: time.Now()}
	if f, ok := w.(*os.File); ok && !p.json && term.IsTerminal(int(f.Fd())) {
		// A dumb terminal interprets no escape sequences: no status line
		// (it needs "erase line") and no colors.
		if v, ok := env("TERM"); !ok || v != "dumb" {
			p.live = true
			_, noColor := env("NO_COLOR")
			p.color = !noColor
		}
	}
	if p.live {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.tick()
	}
	return p
}

// tick refreshes the live status line so elapsed time moves.
func (p *printer) tick() {
	defer close(p.done)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.drawStatus()
			p.mu.Unlock()
		}
	}
}

func (p *printer) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if p.live {
		p.clearStatus()
	}
	p.mu.Unlock()
	if p.stop != nil {
		close(p.stop)
		<-p.done
	}
}

// Event prints one event.
func (p *printer) Event(e watch.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		if e.Kind == event.Measured || e.Kind == event.Baseline {
			// Keep each line whole but small: the checks carry the evidence.
			e.Report = nil
		}
		enc := json.NewEncoder(p.w)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(e)
		return
	}
	if e.Phase != "" {
		p.phase = e.Phase
	}
	if e.Checks != nil {
		p.checks = e.Checks
	}
	if e.Kind == event.Verdict {
		if p.live {
			p.clearStatus()
		}
		for _, line := range p.summary(e.Report) {
			fmt.Fprintln(p.w, line)
		}
		return
	}
	for _, line := range p.render(e) {
		p.line(e.Elapsed, line)
	}
	if p.live {
		p.drawStatus()
	}
}

// hookLine prints a line a hook wrote.
func (p *printer) hookLine(hook, line string) {
	if p.json {
		p.Event(watch.Event{Time: time.Now(), Kind: event.HookOutput, Hook: hook, Message: line,
			Elapsed: time.Since(p.began).Seconds()})
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line(time.Since(p.began).Seconds(), p.paint(dim, hook+" | ")+line)
	if p.live {
		p.drawStatus()
	}
}

func (p *printer) line(elapsed float64, s string) {
	if p.live {
		p.clearStatus()
	}
	fmt.Fprintf(p.w, "%s %s\n", p.paint(dim, fmt.Sprintf("%6.1fs", elapsed)), s)
}

func (p *printer) render(e watch.Event) []string {
	switch e.Kind {
	case event.Started:
		d := e.Deploy
		env := ""
		if d.Environment != "" {
			env = " to " + d.Environment
		}
		return []string{p.paint(bold, fmt.Sprintf("deploywatch: %s %s%s", d.Service, orDash(d.Version), env)) +
			fmt.Sprintf(" (running now: %s)", orDash(d.PreviousVersion))}
	case event.PhaseStarted:
		return []string{p.paint(cyan, "▸ "+e.Phase)}
	case event.PhaseEnded:
		mark, c := "✓", green
		switch e.Outcome {
		case watch.OutcomeFailed:
			mark, c = "✗", red
		case watch.OutcomeInconclusive, watch.OutcomeInterrupted:
			mark, c = "?", yellow
		case watch.OutcomeSkipped:
			mark, c = "-", dim
		}
		s := p.paint(c, fmt.Sprintf("%s %s %s", mark, e.Phase, e.Outcome))
		if e.Message != "" {
			s += ": " + e.Message
		}
		return []string{s}
	case event.Baseline:
		var parts []string
		for _, c := range e.Checks {
			v := watch.FormatValue(c.Baseline, c.Unit)
			if c.BaselineError != "" {
				v = "none (" + c.BaselineError + ")"
			}
			parts = append(parts, c.Name+" "+v)
		}
		return []string{"  baseline: " + strings.Join(parts, " · ")}
	case event.Measured:
		var parts []string
		for _, c := range e.Checks {
			parts = append(parts, p.checkBrief(c))
		}
		return []string{"  " + strings.Join(parts, " · ")}
	case event.Breached:
		c := e.Check
		if c.Verdict == judge.Fail {
			return []string{p.paint(red, "  ✗ "+e.Message)}
		}
		return []string{p.paint(yellow, "  ! "+e.Message)}
	case event.Progress:
		return []string{"  " + e.Message}
	case event.Note:
		return []string{p.paint(dim, "  note: ") + e.Message}
	case event.RollbackStarted:
		return []string{p.paint(yellow, "  ↩ "+e.Message)}
	case event.Resumed:
		return []string{p.paint(bold, "deploywatch: "+e.Message)}
	case event.RollbackDone, event.RollbackFailed:
		return nil // the phase end says it
	}
	return nil
}

// checkBrief is "error_rate 0.05% ✓" and the like.
func (p *printer) checkBrief(c *watch.CheckResult) string {
	v := watch.FormatValue(c.Value, c.Unit)
	switch c.Verdict {
	case judge.Pass:
		return c.Name + " " + v + " " + p.paint(green, "✓")
	case judge.Warn:
		return c.Name + " " + v + " " + p.paint(yellow, "!")
	case judge.Fail:
		return c.Name + " " + p.paint(red, v+" ✗")
	case judge.NoData:
		return c.Name + " " + p.paint(dim, "no data")
	case judge.Error:
		return c.Name + " " + p.paint(red, "error")
	}
	return c.Name + " …"
}

func (p *printer) summary(r *watch.Report) []string {
	if r == nil {
		return nil
	}
	c := map[watch.Verdict]string{watch.Stable: green, watch.Failed: red, watch.Inconclusive: yellow}[r.Verdict]
	out := []string{"", p.paint(bold+c, strings.ToUpper(string(r.Verdict))) + ": " + r.Reason}
	for _, ch := range r.Checks {
		line := fmt.Sprintf("  %-14s %-7s %-10s baseline %-10s", ch.Name, ch.Verdict, watch.FormatValue(ch.Value, ch.Unit), watch.FormatValue(ch.Baseline, ch.Unit))
		if ch.Rule != "" {
			line += fmt.Sprintf(" fail %s", ch.Rule)
			if ch.Line != nil {
				line += " (" + watch.FormatValue(ch.Line, ch.Unit) + ")"
			}
		}
		if ch.Samples != nil {
			line += fmt.Sprintf(" n=%.0f", *ch.Samples)
		}
		if ch.Confidence != nil && ch.Verdict == judge.Fail {
			line += fmt.Sprintf(" %.2f%% sure", 100**ch.Confidence)
		}
		out = append(out, line)
		if ch.Verdict == judge.Fail || ch.Verdict == judge.Error {
			out = append(out, "      query: "+ch.Query)
			if ch.Reason != "" {
				out = append(out, "      why:   "+ch.Reason)
			}
		} else if ch.Verdict == judge.NoData || ch.Verdict == judge.Warn {
			out = append(out, "      "+ch.Reason)
		}
	}
	for _, s := range r.Skipped {
		out = append(out, fmt.Sprintf("  %-14s skipped: %s", s.Name, s.Reason))
	}
	if rb := r.Rollback; rb != nil && rb.Performed {
		if rb.OK {
			out = append(out, p.paint(green, fmt.Sprintf("rolled back to %s in %s", orDash(rb.Revision), rb.Duration)))
		} else {
			out = append(out, p.paint(red, "ROLLBACK FAILED: "+rb.Error))
		}
	}
	if r.DetectedAt != nil {
		out = append(out, fmt.Sprintf("detected %.1fs after the deploy started", r.DetectedAt.Sub(r.Deploy.StartedAt).Seconds()))
	}
	return out
}

func (p *printer) drawStatus() {
	if !p.live || p.closed {
		return
	}
	var parts []string
	for _, c := range p.checks {
		parts = append(parts, p.checkBrief(c))
	}
	s := fmt.Sprintf("%s %s %.0fs  %s", p.paint(cyan, "●"), p.phase, time.Since(p.began).Seconds(), strings.Join(parts, " · "))
	fmt.Fprintf(p.w, "\r\033[K%s", s)
	p.status = s
}

func (p *printer) clearStatus() {
	if p.status != "" {
		fmt.Fprint(p.w, "\r\033[K")
		p.status = ""
	}
}

const (
	bold   = "\033[1m"
	dim    = "\033[2m"
	red    = "\033[31m"
	green  = "\033[32m"
	yellow = "\033[33m"
	cyan   = "\033[36m"
	reset  = "\033[0m"
)

func (p *printer) paint(code, s string) string {
	if !p.color {
		return s
	}
	return code + s + reset
}

func orDash(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
