package watch

import (
	"cmp"
	"context"
	"math"
	"strings"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
)

// PodsCheck is the name under which platform health appears among the
// checks of the report.
const PodsCheck = "pods"

// podsCheck follows the platform's health report like a check: a problem
// fails the deploy at once (a crash loop is not noise), and errors count
// towards the error limit as for any check.
type podsCheck struct {
	tracker judge.Tracker
	result  *CheckResult
}

func newPodsCheck(errorLimit int) *podsCheck {
	return &podsCheck{
		tracker: judge.Tracker{Limits: judge.Limits{Failures: 1, Errors: errorLimit}},
		result: &CheckResult{Name: PodsCheck, Type: "platform", Verdict: judge.StatusUnknown, Unit: "percent",
			Rule: "no crash loops, failed pulls, OOM kills, restarts above the limit or pods not ready past the grace"},
	}
}

// watchHealth asks the platform for the workload's health, when it can
// tell, and ends the timeline on a problem or when the platform cannot be
// reached past the error limit.
func (w *run) watchHealth(ctx context.Context) error {
	hr, ok := w.platform.(HealthReporter)
	if !ok {
		return nil
	}
	if w.pods == nil {
		w.pods = newPodsCheck(w.spec.ErrorLimit)
	}
	pc := w.pods
	if pc.tracker.Failed() || pc.tracker.GaveUp() {
		return nil
	}
	pctx, cancel := w.platformContext(ctx)
	h, err := hr.Health(pctx, w.deploy)
	cancel()
	if ctx.Err() != nil {
		return errStopped
	}
	r := pc.result
	r.MeasuredAt = w.clock.Now()
	switch {
	case err != nil:
		pc.tracker.Observe(judge.Error)
		r.Verdict, r.Reason = judge.Error, err.Error()
		if pc.tracker.GaveUp() && !w.anyCheckJudging() {
			return &inconclusive{reason: "could not read the workload's health: " + err.Error()}
		}
	case len(h.Problems) > 0:
		pc.tracker.Observe(judge.Fail)
		r.Verdict, r.Reason = judge.Fail, strings.Join(h.Problems, "; ")
		r.Value = judge.Num(h.NewShare)
		r.Measurements = pc.tracker.Measured()
		breach := *r
		w.emit(Event{Kind: event.Breached, Check: &breach, Message: PodsCheck + ": " + r.Reason})
		return &failure{reason: PodsCheck + ": " + r.Reason}
	default:
		pc.tracker.Observe(judge.Pass)
		r.Verdict, r.Reason = judge.Pass, h.Summary
		r.Value = judge.Num(h.NewShare)
		if !math.IsNaN(h.NewShare) && h.Summary != w.lastHealth {
			w.emit(Event{Kind: event.Progress, Message: h.Summary})
		}
		w.lastHealth = h.Summary
	}
	r.Measurements = pc.tracker.Measured()
	return nil
}

// anyCheckJudging reports whether a metric check can still judge.
func (w *run) anyCheckJudging() bool {
	for _, c := range w.checks {
		if !c.tracker.GaveUp() {
			return true
		}
	}
	return false
}

// platformVars are the platform's query variables, if it has any.
// deployVars are the query variables that name the deploy. In the
// baseline, $version is the version the deploy replaces, or * (any) when
// that is unknown: the baseline measures what ran before.
func (w *run) deployVars(baseline bool) config.Vars {
	v := config.Vars{
		Selector: w.spec.Metrics.Selector, Service: w.deploy.Service, Environment: w.deploy.Environment, Version: w.deploy.Version,
	}
	if baseline {
		v.Version = cmp.Or(w.deploy.PreviousVersion, "*")
	}
	return v
}

func (w *run) platformVars(ctx context.Context, baseline bool) map[string]string {
	qv, ok := w.platform.(QueryVarser)
	if !ok {
		return nil
	}
	pctx, cancel := w.platformContext(ctx)
	defer cancel()
	return qv.QueryVars(pctx, w.deploy, baseline)
}
