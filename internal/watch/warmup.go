package watch

import (
	"context"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
)

// warmup is the grace period after the rollout: only hard failures (the
// platform's health problems) count. Its end is where the checks begin to
// count requests ($since_warmup).
func (w *run) warmup(ctx context.Context) (ended, error) {
	end := w.warmupEnd()
	for w.clock.Now().Before(end) {
		if err := w.watchHealth(ctx); err != nil {
			return ended{}, err
		}
		if err := w.sleep(ctx, min(w.spec.Phases.Interval, end.Sub(w.clock.Now()))); err != nil {
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
