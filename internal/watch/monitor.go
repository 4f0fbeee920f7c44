package watch

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
)

// monitor is the bake window: at every look (each scrape when the source
// is cheap to ask, else every interval), each check is measured against
// its lines and the baseline, and the pods' health is looked at.
//
// The measurements are taken at fixed times, look after look from the
// phase's start. A watch resumed after a gap measures the times it
// missed from the source's history before it goes on, so it reaches the
// verdict an uninterrupted watch would have.
func (w *run) monitor(ctx context.Context) (ended, error) {
	if len(w.checks) == 0 && w.pods == nil {
		return skipped("no checks"), nil
	}
	interval := w.lookEvery()
	start := w.current.StartedAt
	end := start.Add(w.spec.Phases.Monitor)
	next := start.Add(interval)
	if !w.lastTick.IsZero() {
		next = w.lastTick.Add(interval)
	}
	from := w.measurableFrom()
	if missed := w.clock.Now().Sub(next); w.resuming && missed > interval && next.Before(end) {
		if from.After(next) {
			w.note("the metric source keeps no history from before this process (it began collecting at %s): the %s missed are not measured",
				from.Format(time.TimeOnly), config.FormatDuration(missed.Round(time.Second)))
		} else {
			w.note("measuring the %s missed while no one watched from the metric source's history", config.FormatDuration(missed.Round(time.Second)))
		}
	}
	for ; !next.After(end); next = next.Add(interval) {
		if err := w.sleepUntil(ctx, next); err != nil {
			return ended{}, err
		}
		if next.Before(from) {
			w.lastTick = next
			continue
		}
		if err := w.tick(ctx, next); err != nil {
			return ended{}, err
		}
		w.lastTick = next
		_ = w.save()
	}
	if len(w.checks) == 0 {
		return passed("the pods stayed healthy for %s", config.FormatDuration(w.spec.Phases.Monitor)), nil
	}
	for _, c := range w.checks {
		if c.undecided != "" && c.enforced() {
			reason := c.cfg.Name + ": " + c.undecided + "; the monitor ended before the control group could tell whose it is"
			if c.tracker.GaveUp() {
				reason += " (the check then gave up: " + c.result.Reason + ")"
			}
			return ended{}, &inconclusive{reason: reason}
		}
	}
	return passed("no check failed in %s", config.FormatDuration(w.spec.Phases.Monitor)), nil
}

// measurableFrom is the earliest time the source can measure: a source
// without history (the embedded engine) began collecting with this
// process, so a resumed watch cannot measure the ticks before it, nor the
// first window after it (which would read as no traffic).
func (w *run) measurableFrom() time.Time {
	hc, ok := w.source.(HistoryCollector)
	if !ok {
		return time.Time{}
	}
	return hc.CollectingSince().Add(w.window)
}

// tick measures every check once, as of at, and applies the limits.
func (w *run) tick(ctx context.Context, at time.Time) error {
	if err := w.watchHealth(ctx); err != nil {
		return err
	}
	if len(w.checks) == 0 {
		w.emit(Event{Kind: event.Measured, Checks: w.results()})
		return w.judgeErrors()
	}
	vars := w.deployVars(false)
	vars.SinceDeploy, vars.SinceWarmup = at.Sub(w.deploy.StartedAt), at.Sub(w.judgeFrom)
	vars.Platform = w.platformVars(ctx, false)
	type look struct {
		verdict judge.Verdict
		cmp     comparedWith
		outcome judge.ControlOutcome
	}
	verdicts := make(map[*check]look, len(w.checks))
	var mu sync.Mutex
	w.parallel(ctx, func(ctx context.Context, c *check) {
		if c.frozen {
			return
		}
		v := vars
		v.Window = c.window
		var l look
		l.verdict = c.measure(ctx, w.source, v, at)
		l.verdict, l.cmp, l.outcome = c.compareControl(ctx, w.source, w.spec.Metrics.Control, v, at, l.verdict)
		mu.Lock()
		verdicts[c] = l
		mu.Unlock()
	})
	if ctx.Err() != nil {
		return errStopped
	}
	var failed, shared *check
	for _, c := range w.checks {
		l, ok := verdicts[c]
		if !ok {
			continue
		}
		v := l.verdict
		prev := c.result.Verdict
		c.tracker.Observe(v.Status)
		vv := vars
		vv.Window = c.window
		c.record(v, vv, at)
		c.result.Comparison, c.result.Control = l.cmp.by, l.cmp.value
		switch {
		case v.Status == judge.Error || v.Status == judge.NoData || c.noDataStreak > 0:
			// A look that measured nothing decides nothing either.
		case l.outcome == judge.ControlExcuses:
			c.undecided = v.Reason
		case v.Status == judge.Warn && !math.IsNaN(v.Line) && c.th.Fail.Crosses(v.Value, v.Line):
			// Beyond the line, not yet sure: nothing is cleared.
		default:
			c.undecided = ""
		}
		if l.outcome == judge.ControlShared && shared == nil && c.enforced() {
			shared = c
		}
		if v.Status == judge.Fail || v.Status == judge.Warn && prev != judge.Warn {
			// A copy: observers may keep the event while the check moves on.
			breach := *c.result
			msg := c.cfg.Name + ": " + v.Reason
			if !c.enforced() {
				msg += " (mode: report; the deploy is not failed for it)"
			}
			w.emit(Event{Kind: event.Breached, Check: &breach, Message: msg})
		}
		if c.tracker.Failed() && failed == nil && c.enforced() {
			failed = c
		}
	}
	w.emit(Event{Kind: event.Measured, Checks: w.results()})
	if failed != nil {
		return &failure{reason: failed.cfg.Name + ": " + failed.result.Reason}
	}
	if shared != nil {
		return &inconclusive{reason: shared.cfg.Name + ": " + shared.result.Reason}
	}
	return w.judgeErrors()
}

// judgeErrors ends the watch as inconclusive once no check can measure.
func (w *run) judgeErrors() error {
	if len(w.checks) == 0 {
		if w.pods != nil && w.pods.tracker.GaveUp() {
			return &inconclusive{reason: "could not read the workload's health: " + w.pods.result.Reason}
		}
		return nil
	}
	if !slices.ContainsFunc(w.checks, func(c *check) bool { return c.tracker.GaveUp() }) {
		return nil
	}
	for _, c := range w.checks {
		if !c.tracker.GaveUp() && c.tracker.Judged() {
			return nil
		}
		if !c.tracker.GaveUp() && !c.frozen && c.tracker.ErrStreak() == 0 {
			return nil // still measuring (no data so far, but no errors)
		}
	}
	var reasons []string
	for _, c := range w.checks {
		if c.tracker.GaveUp() {
			reasons = append(reasons, fmt.Sprintf("%s: %s", c.cfg.Name, c.result.Reason))
		}
	}
	return &inconclusive{reason: "the checks could not measure: " + strings.Join(reasons, "; ")}
}
