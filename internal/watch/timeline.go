package watch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/deploywatch/deploywatch/internal/event"
)

// phase is one step of the timeline.
type phase struct {
	name string
	// run carries the phase out and says how it ended, or returns the
	// error that ends the timeline: a *failure, an *inconclusive or
	// errStopped. It may be called again for a phase that was under way
	// when a previous process stopped; it then takes its timings from the
	// phase's record, which keeps its original start.
	run func(*run, context.Context) (ended, error)
}

// timeline is the order of the phases a watch walks. The walker begins
// and ends each one, saves the state between them and announces both;
// the phases only do their work.
var timeline = []phase{
	{PhaseStart, (*run).start},
	{PhaseRollout, (*run).rollout},
	{PhaseWarmup, (*run).warmup},
	{PhaseVerify, (*run).verify},
	{PhaseMonitor, (*run).monitor},
	{PhaseStable, (*run).stable},
}

// ended is how a phase ended.
type ended struct {
	outcome Outcome
	reason  string
}

func passed(format string, args ...any) ended {
	return ended{OutcomePassed, fmt.Sprintf(format, args...)}
}

func skipped(format string, args ...any) ended {
	return ended{OutcomeSkipped, fmt.Sprintf(format, args...)}
}

// failure ends the timeline with a failed deploy.
type failure struct{ reason string }

func (f *failure) Error() string { return f.reason }

// inconclusive ends the timeline with a deploy that could not be judged.
type inconclusive struct{ reason string }

func (i *inconclusive) Error() string { return i.reason }

// errStopped ends the timeline when the caller cancelled the watch.
var errStopped = errors.New("the watch was stopped before a verdict")

// Run follows one deploy to its verdict and returns the report. Cancelling
// ctx stops the watch (an inconclusive verdict, no action taken, the state
// left resumable); a rollback already under way is finished and reported
// unless the abort context ends too.
func (e *Engine) Run(ctx context.Context, req Request) *Report {
	w := e.newRun(req)
	return w.walk(ctx, 0)
}

// walk goes through the timeline from the phase at index from.
func (w *run) walk(ctx context.Context, from int) *Report {
	for _, p := range timeline[from:] {
		if !w.resumingPhase(p.name) {
			w.beginPhase(p.name)
		}
		end, err := p.run(w, ctx)
		if err != nil {
			return w.conclude(ctx, err)
		}
		w.endPhase(end.outcome, end.reason)
	}
	return w.finish(Stable, w.current.Reason)
}

// conclude ends the timeline on a failure, an inconclusive watch or an
// interruption, and carries out the policy.
func (w *run) conclude(ctx context.Context, err error) *Report {
	var f *failure
	var inc *inconclusive
	switch {
	case errors.As(err, &f):
		// The decision is saved with the phase's end, so that a watch
		// resumed from here carries it out rather than walks on.
		now := w.clock.Now()
		w.report.DetectedAt = &now
		w.decision = &Decision{Verdict: Failed, Reason: f.reason, Policy: w.spec.OnFailure, Setting: "on_failure"}
		w.endPhase(OutcomeFailed, f.reason)
	case errors.As(err, &inc):
		w.decision = &Decision{Verdict: Inconclusive, Reason: inc.reason, Policy: w.spec.OnInconclusive, Setting: "on_inconclusive"}
		w.endPhase(OutcomeInconclusive, inc.reason)
	default:
		// Nothing is decided: the state stays at its last checkpoint, so
		// the watch can be resumed.
		reason := errStopped.Error()
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			reason += " (" + cause.Error() + ")"
		}
		reason += "; nothing was rolled back"
		p := w.current
		now := w.clock.Now()
		p.EndedAt, p.Outcome, p.Reason = &now, OutcomeInterrupted, reason
		w.emit(Event{Kind: event.PhaseEnded, Outcome: OutcomeInterrupted, Message: reason})
		return w.finishWithoutSaving(Inconclusive, reason)
	}
	return w.carryOut(ctx)
}

// carryOut acts on the decision by its policy and ends the watch. A watch
// resumed after its policy's phase ended only ends.
func (w *run) carryOut(ctx context.Context) *Report {
	d := w.decision
	if p := w.current; p.EndedAt == nil || (p.Name != PhaseRollback && p.Name != PhasePause) {
		w.act(ctx, d.Policy, d.Setting, d.Reason)
	}
	return w.finish(d.Verdict, d.Reason)
}

// beginPhase opens a phase's record, announces it and saves the state.
func (w *run) beginPhase(name string) {
	w.openPhase(name)
	_ = w.save()
}

// openPhase begins the phase's record and announces it, without saving:
// for a phase whose own announcement must be queued before the first
// checkpoint that shows it begun.
func (w *run) openPhase(name string) {
	p := &PhaseRecord{Name: name, StartedAt: w.clock.Now()}
	w.report.Phases = append(w.report.Phases, p)
	w.current = p
	w.emit(Event{Kind: event.PhaseStarted})
}

// endPhase closes the current phase's record, announces it and saves the
// state.
func (w *run) endPhase(o Outcome, reason string) {
	p := w.current
	if p == nil || p.EndedAt != nil {
		return
	}
	now := w.clock.Now()
	p.EndedAt, p.Outcome, p.Reason = &now, o, reason
	w.resuming = false
	w.emit(Event{Kind: event.PhaseEnded, Outcome: o, Message: reason})
	_ = w.save()
}

// resumingPhase reports whether the phase name was under way when the
// watch was saved, and is now taken up again rather than begun.
func (w *run) resumingPhase(name string) bool {
	return w.resuming && w.current != nil && w.current.Name == name && w.current.EndedAt == nil
}

func (w *run) finish(v Verdict, reason string) *Report {
	r := w.finishWithoutSaving(v, reason)
	_ = w.save()
	return r
}

func (w *run) finishWithoutSaving(v Verdict, reason string) *Report {
	if rl, ok := w.source.(RateLimitCounter); ok {
		if n := rl.RateLimited(); n > 0 {
			w.note("the metric source's rate limit was met %d times during the watch: those looks waited for it to reset, or erred", n)
		}
	}
	r := w.report
	r.Verdict, r.Reason = v, reason
	r.Deploy = w.deploy
	r.Checks = w.results()
	r.EndedAt = w.clock.Now()
	w.emit(Event{Kind: event.Verdict, Message: fmt.Sprintf("%s: %s", v, reason), Report: r})
	return r
}

// sleep waits d on the engine's clock, or until ctx ends.
func (w *run) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		if ctx.Err() != nil {
			return errStopped
		}
		return nil
	}
	select {
	case <-ctx.Done():
		return errStopped
	case <-w.clock.After(d):
		return nil
	}
}

// sleepUntil waits until t; a time already past returns at once.
func (w *run) sleepUntil(ctx context.Context, t time.Time) error {
	return w.sleep(ctx, t.Sub(w.clock.Now()))
}

func (w *run) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.log.Info(msg, "service", w.deploy.Service)
	w.emit(Event{Kind: event.Note, Message: msg})
}

func (w *run) emit(e Event) {
	e.Time = w.clock.Now()
	e.Elapsed = e.Time.Sub(w.began).Seconds()
	e.Service, e.Version = w.deploy.Service, w.deploy.Version
	if e.Phase == "" && w.current != nil {
		e.Phase = w.current.Name
	}
	w.observer.Event(e)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
