package watch

import (
	"context"
	"errors"
	"fmt"
)

// Plan measures what a watch started now would measure at Start (the
// scrape interval, the history the source holds, every check's baseline)
// and works out what that watch could see, without deploying, rolling
// back or notifying anything. The report it returns holds the settings,
// the checks' baselines and the Detectability.
func (e *Engine) Plan(ctx context.Context) (*Report, error) {
	w := e.newRun(Request{})
	if w.source == nil {
		return nil, errors.New("no metrics configured: a watch would judge the rollout and the pods only")
	}
	if _, ok := w.source.(HistoryCollector); ok {
		return nil, errors.New("the embedded engine keeps no history before it starts: plan needs a metric source with history (metrics.prometheus)")
	}
	// Read the running version as a watch started now would (read only):
	// a Kubernetes target pins the serving revision, whose pods the
	// queries' $pods name.
	if prev, err := w.platform.Current(ctx, w.deploy, false); err != nil {
		return nil, fmt.Errorf("reading the running version: %w", err)
	} else {
		w.deploy.PreviousVersion = prev
	}
	w.captureBaseline(ctx)
	if ctx.Err() != nil {
		return nil, errStopped
	}
	var failed int
	var last string
	for _, c := range w.checks {
		if c.result.BaselineError != "" {
			failed++
			last = c.result.BaselineError
		}
	}
	if failed > 0 && failed == len(w.checks) {
		return nil, fmt.Errorf("the metric source could not measure any check's baseline: %s", last)
	}
	w.planDetection()
	w.report.Checks = w.results()
	return w.report, nil
}
