package watch

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
)

// start records the deploy and the version running before it (the
// rollback target), and captures every check's baseline over the window
// that ends when the deploy starts.
func (w *run) start(ctx context.Context) (ended, error) {
	prev, err := w.platform.Current(ctx, w.deploy, !w.req.RunDeploy)
	switch {
	case err != nil:
		w.note("could not read the running version: %v", err)
	case prev != "":
		w.deploy.PreviousVersion = prev
	}
	if w.checklist != nil {
		w.checklist.Before(ctx, w.deploy)
	}
	w.emit(Event{Kind: event.Started, Deploy: &w.deploy,
		Message: fmt.Sprintf("deploying %s %s (running: %s)", w.deploy.Service, orUnknown(w.deploy.Version), orUnknown(w.deploy.PreviousVersion))})
	if ctx.Err() != nil {
		return ended{}, errStopped
	}
	if w.source == nil {
		return passed("no metrics configured"), nil
	}
	if err := w.collectHistory(ctx); err != nil {
		return ended{}, err
	}
	w.captureBaseline(ctx)
	if ctx.Err() != nil {
		return ended{}, errStopped
	}
	var parts []string
	for _, c := range w.checks {
		parts = append(parts, fmt.Sprintf("%s %s", c.cfg.Name, FormatValue(c.result.Baseline, c.cfg.Unit)))
	}
	w.emit(Event{Kind: event.Baseline, Checks: w.results(), Message: "baseline over " + w.report.Settings.BaselineHistory + ": " + strings.Join(parts, ", ")})
	w.planDetection()
	if w.spec.Metrics.Language == config.LanguageValues {
		return passed("no baseline: %s gives values for the present only", w.spec.Metrics.Source), nil
	}
	return passed("baseline captured over %s", w.report.Settings.BaselineHistory), nil
}

// collectHistory gives a source without history (the embedded engine) the
// baseline window before run deploys. A watch of a deploy that already
// happened cannot have a baseline from such a source; it says so.
func (w *run) collectHistory(ctx context.Context) error {
	hc, ok := w.source.(HistoryCollector)
	if !ok {
		return nil
	}
	since := hc.CollectingSince()
	want := w.spec.Metrics.BaselineWindow
	if !w.req.RunDeploy {
		if w.deploy.StartedAt.Before(since.Add(want)) {
			w.note("the embedded engine began collecting at %s: there is little or no history before this deploy, so baseline-relative lines fall back to their floors",
				since.Format(time.TimeOnly))
		}
		return nil
	}
	if wait := since.Add(want).Sub(w.clock.Now()); wait > 0 {
		w.note("the embedded engine has no history: scraping for %s to capture the baseline before deploying",
			config.FormatDuration(wait.Round(time.Second)))
		if err := w.sleep(ctx, wait); err != nil {
			return err
		}
	}
	w.deploy.StartedAt = w.clock.Now()
	return nil
}
