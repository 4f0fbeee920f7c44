package watch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
)

// A past deploy can be judged again from the metric source's history:
// the engine runs its whole timeline against a clock that jumps instead
// of waiting, and a platform that never acts. This is how deploywatch
// analyze and backtest say what a config would have decided, and when.

// replayClock is a clock whose waits return at once, advancing it.
type replayClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *replayClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *replayClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.now = c.now.Add(max(d, 0))
	now := c.now
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- now
	return ch
}

// pastDeploy is the platform of a deploy that already happened: it is
// out, it ran after previous, and nothing is done to it.
type pastDeploy struct{ previous string }

func (p pastDeploy) Current(context.Context, Deploy, bool) (string, error) { return p.previous, nil }
func (pastDeploy) Deploy(context.Context, Deploy) error                    { return nil }
func (pastDeploy) Progress(context.Context, Deploy) (Progress, error) {
	return Progress{Done: true, Message: "deployed (a past deploy)"}, nil
}
func (pastDeploy) Rollback(context.Context, Deploy) (RollbackOutcome, error) {
	return RollbackOutcome{Declined: true, Note: "analysis of a past deploy: nothing is rolled back"}, nil
}
func (pastDeploy) Pause(context.Context, Deploy) error { return nil }

// Past is a deploy to judge from history.
type Past struct {
	Version, PreviousVersion string
	DeployedAt               time.Time
	// Until ends the monitor window early (zero: the config's monitor).
	Until time.Time
}

// ErrNotOver is returned for a deploy whose warm-up has not ended, and
// ErrTooShort for one whose monitor window would hold no look.
var (
	ErrNotOver  = errors.New("the deploy's warm-up is not over yet")
	ErrTooShort = errors.New("nothing to judge")
)

// Analyze judges a past deploy from the source's history with the
// engine's whole timeline: the verdict the spec would have given and when,
// with every check's evidence. Nothing is deployed, rolled back or
// notified: failures and inconclusive verdicts meet the notify policy and
// the engine's observer only. now bounds the history: the monitor window
// ends by then.
func Analyze(ctx context.Context, spec Spec, src Querier, past Past, now time.Time, opts ...Option) (*Report, error) {
	if src == nil {
		return nil, errors.New("no metrics configured: there is nothing to judge a past deploy on")
	}
	if _, ok := src.(HistoryCollector); ok {
		return nil, errors.New("the embedded engine keeps no history: analyze needs a metric source with history (metrics.prometheus)")
	}
	end := now
	if !past.Until.IsZero() && past.Until.Before(end) {
		end = past.Until
	}
	warmEnd := past.DeployedAt.Add(spec.Phases.Warmup)
	if !warmEnd.Before(end) {
		if !past.Until.IsZero() && !past.Until.After(warmEnd) {
			return nil, fmt.Errorf("%w: --until %s is before the warm-up ends (%s)", ErrTooShort, past.Until.Format(time.RFC3339), warmEnd.Format(time.RFC3339))
		}
		return nil, fmt.Errorf("%w (it ends at %s)", ErrNotOver, warmEnd.Format(time.RFC3339))
	}
	if left := end.Sub(warmEnd); left < spec.Phases.Monitor {
		if left < spec.Phases.Interval {
			return nil, fmt.Errorf("%w: less than one interval (%s) of monitor window before %s",
				ErrTooShort, config.FormatDuration(spec.Phases.Interval), end.Format(time.RFC3339))
		}
		spec.Phases.Monitor = left.Truncate(time.Second)
	}
	spec.OnFailure, spec.OnInconclusive = config.PolicyNotify, config.PolicyNotify
	opts = append(opts, WithClock(&replayClock{now: past.DeployedAt}))
	eng := New(spec, src, pastDeploy{previous: past.PreviousVersion}, opts...)
	rep := eng.Run(ctx, Request{Version: past.Version, StartedAt: past.DeployedAt, TriggeredBy: "analyze"})
	return rep, nil
}
