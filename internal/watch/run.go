package watch

import (
	"context"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
)

// run is the state of one watch as it walks the timeline. Everything in
// it that a resumed watch needs is saved in a State (see state.go).
type run struct {
	*Engine
	req    Request
	began  time.Time
	report *Report
	deploy Deploy
	// current is the phase under way (or the last one).
	current *PhaseRecord
	// resuming is set while the phase that was under way when the state
	// was saved is taken up again.
	resuming bool

	// deployBegan is set, and saved, just before the deploy command runs:
	// a resumed watch never runs it again. deployInterrupted is set when
	// the command was stopped (Ctrl-C) before it finished.
	deployBegan       bool
	deployInterrupted bool
	// rolledOutAtOnce is set when the first look found the rollout done.
	rolledOutAtOnce bool
	// sideFrom is when the rollout's side-by-side comparison begins
	// counting: a warm-up after both sides first served.
	sideFrom time.Time

	// Measured at Start. look is how often the monitor measures.
	scrape, window, history, look time.Duration
	checks                        []*check
	// pods follows the platform's health report, when it gives one.
	pods *podsCheck
	// judgeFrom is when warm-up ended: the start of $since_warmup.
	judgeFrom time.Time
	// lastTick is the time of the monitor's last measurement.
	lastTick time.Time
	// decision is the verdict once decided, while its policy is carried out.
	decision *Decision

	lastHealth string
	// saveFailed is set once a checkpoint failed, so it is said once.
	saveFailed bool
}

// Decision is a failed or inconclusive verdict awaiting its policy.
type Decision struct {
	Verdict Verdict `json:"verdict"`
	Reason  string  `json:"reason"`
	// Policy is what the Setting (on_failure, on_inconclusive) asks for.
	Policy  config.Policy `json:"policy"`
	Setting string        `json:"setting"`
}

func (e *Engine) newRun(req Request) *run {
	w := &run{Engine: e, req: req, began: e.clock.Now()}
	started := req.StartedAt
	if started.IsZero() {
		started = w.began
	}
	w.deploy = Deploy{
		Service: e.spec.Service, Environment: e.spec.Environment, Version: req.Version,
		StartedAt: started, TriggeredBy: req.TriggeredBy,
	}
	w.report = &Report{
		Verdict: InProgress, Deploy: w.deploy,
		Phases: []*PhaseRecord{}, Checks: []*CheckResult{}, Deliveries: []Delivery{},
		Settings: Settings{
			Interval: config.FormatDuration(e.spec.Phases.Interval), Warmup: config.FormatDuration(e.spec.Phases.Warmup),
			Monitor: config.FormatDuration(e.spec.Phases.Monitor), OnFailure: string(e.spec.OnFailure),
		},
	}
	for _, s := range e.spec.Skipped {
		w.report.Skipped = append(w.report.Skipped, SkippedCheck(s))
	}
	w.requestSaves()
	return w
}

// requestSaves lets the platform save the watch's state in the middle of
// a call that changes its own record.
func (w *run) requestSaves() {
	if sr, ok := w.platform.(SaveRequester); ok {
		sr.RequestSaves(func() { _ = w.save() })
	}
}

// results copies every check's standing: the pods first, then the metric
// checks in the config's order.
func (w *run) results() []*CheckResult {
	out := make([]*CheckResult, 0, len(w.checks)+1)
	if w.pods != nil {
		cp := *w.pods.result
		out = append(out, &cp)
	}
	for _, c := range w.checks {
		cp := *c.result
		out = append(out, &cp)
	}
	return out
}

// save gives the checkpointer the watch's state. A failure is said once;
// the caller decides whether it may go on (see runDeploy).
func (w *run) save() error {
	if w.checkpoint == nil {
		return nil
	}
	err := w.checkpoint.Checkpoint(w.state())
	if err != nil && !w.saveFailed {
		w.saveFailed = true
		w.note("could not save the watch's state (%v): it goes on, but could not be resumed from here", err)
	}
	return err
}

// queryContext bounds one round of metric queries.
func (w *run) queryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	b := w.spec.Bounds.Query
	return context.WithTimeoutCause(ctx, b, &boundError{what: "metric queries", bound: b})
}

// platformContext bounds one look at the platform.
func (w *run) platformContext(ctx context.Context) (context.Context, context.CancelFunc) {
	b := w.spec.Bounds.Platform
	return context.WithTimeoutCause(ctx, b, &boundError{what: "the platform's answer", bound: b})
}

// boundError says which of the Spec's bounds cut a wait short.
type boundError struct {
	what  string
	bound time.Duration
}

func (e *boundError) Error() string {
	return e.what + " took longer than " + config.FormatDuration(e.bound)
}
