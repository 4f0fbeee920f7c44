package watch

import (
	"context"
	"sync"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/judge"
)

// warmup is the grace period after the rollout: only hard failures count,
// the platform's health problems and an error share so far beyond its
// line that no warm-up explains it (a crash-level release fails here at
// once, see judge.Overwhelming). Its end is where the checks begin to
// count requests ($since_warmup).
func (w *run) warmup(ctx context.Context) (ended, error) {
	end := w.warmupEnd()
	step := w.spec.Phases.Interval
	early := w.earlyChecks()
	if len(early) > 0 {
		step = w.lookEvery()
	}
	for w.clock.Now().Before(end) {
		if err := w.watchHealth(ctx); err != nil {
			return ended{}, err
		}
		if err := w.lookEarly(ctx, early); err != nil {
			return ended{}, err
		}
		if err := w.sleep(ctx, min(step, end.Sub(w.clock.Now()))); err != nil {
			return ended{}, err
		}
	}
	if err := w.watchHealth(ctx); err != nil {
		return ended{}, err
	}
	// A watch that found its warm-up already over begins counting at the
	// warm-up phase's start, not from a past that may hold the rollout's
	// mixed traffic.
	w.judgeFrom = maxTime(end, w.current.StartedAt)
	return passed("no hard failures in the %s warm-up", config.FormatDuration(w.spec.Phases.Warmup)), nil
}

// warmupEnd is when the warm-up ends: its length after the phase began,
// or after the deploy's start for a watch whose rollout was complete at
// the first look (it may have finished before the watch began, and a watch
// started late may be past its warm-up already).
func (w *run) warmupEnd() time.Time {
	if w.rolledOutAtOnce && !w.req.RunDeploy {
		return w.deploy.StartedAt.Add(w.spec.Phases.Warmup)
	}
	return w.current.StartedAt.Add(w.spec.Phases.Warmup)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// earlyChecks are the checks that may fail a release during the warm-up:
// error shares counted from a fixed start, with an upward line.
func (w *run) earlyChecks() []*check {
	var out []*check
	for _, c := range w.checks {
		if c.cfg.Type == config.TypeRatio && c.cfg.Accumulates() && c.cfg.Fail.Op.Upward() && !c.frozen && c.enforced() {
			out = append(out, c)
		}
	}
	return out
}

// lookEarly measures the early checks over the warm-up so far and fails
// the release when one is overwhelmingly bad.
func (w *run) lookEarly(ctx context.Context, early []*check) error {
	if len(early) == 0 {
		return nil
	}
	at := w.clock.Now()
	since := at.Sub(w.current.StartedAt)
	if since < 2*w.scrape {
		return nil // increase() needs two scrapes in its range
	}
	vars := w.deployVars(false)
	vars.SinceDeploy, vars.SinceWarmup = at.Sub(w.deploy.StartedAt), since
	vars.Platform = w.platformVars(ctx, false)
	var mu sync.Mutex
	verdicts := make(map[*check]judge.Verdict, len(early))
	w.parallelOver(ctx, early, func(ctx context.Context, c *check) {
		v := vars
		v.Window = c.window
		verdict := c.measureEarly(ctx, w.source, v, at)
		mu.Lock()
		verdicts[c] = verdict
		mu.Unlock()
	})
	if ctx.Err() != nil {
		return errStopped
	}
	undecided := false
	for _, c := range early {
		verdict := verdicts[c]
		if verdict.Status != judge.Fail {
			continue
		}
		v := vars
		v.Window = c.window
		// The control group tells a crash from a shared outage here too;
		// it is beyond the line when beyond the check's own fail line, not
		// the warm-up's far one.
		cv := verdict
		cv.Line = c.th.FailLine(c.judgedBaseline())
		out, cmp, outcome := c.compareControl(ctx, w.source, w.spec.Metrics.Control, v, at, cv)
		out.Line = verdict.Line
		if outcome == judge.ControlExcuses {
			undecided = true
			continue // undecided, for now: the monitor will judge
		}
		return w.endOn(c, out, cmp, v, at, outcome)
	}
	if undecided {
		_ = w.save() // the comparison spent part of the check's confidence
	}
	return nil
}
