package watch

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
)

// captureBaseline measures what the watch needs from before the deploy:
// the scrape interval (which sizes the windows), the history the source
// holds, and every check's baseline, over the window that ends at the
// deploy's start, or baseline.offset before it.
func (w *run) captureBaseline(ctx context.Context) {
	m := w.spec.Metrics
	at := w.deploy.StartedAt.Add(-m.BaselineOffset)
	baseVars := w.platformVars(ctx, true)
	selector, err := config.ExpandSelector(m.Selector, baseVars)
	if err != nil {
		selector = m.Selector // validated at load: cannot happen
	}
	scrape, how := m.ScrapeInterval, "configured"
	if scrape == 0 && m.Language == config.LanguagePromQL {
		var err error
		scrape, err = w.measureScrape(ctx, selector, w.deploy.StartedAt)
		how = "measured"
		if err != nil {
			scrape, how = FallbackScrape, "assumed"
			w.note("could not measure the scrape interval (%v); assuming %s", err, FallbackScrape)
		}
	}
	w.scrape = scrape
	w.window = w.spec.window(scrape)
	w.history = m.BaselineWindow
	if m.Language == config.LanguagePromQL {
		w.history = w.measureHistory(ctx, selector, at, m.BaselineWindow, scrape)
	}
	w.recordSettings(how)
	if w.history < m.BaselineWindow {
		w.note("the metric source holds %s of history before the deploy; the baseline uses that instead of %s",
			config.FormatDuration(w.history), config.FormatDuration(m.BaselineWindow))
	}
	w.checks = w.newChecks()
	if m.Language == config.LanguageValues {
		w.note("%s gives values, not counts: no significance test can be made; each check fails on failure_limit failing looks in a row, and has no baseline (absolute rules only)", m.Source)
		for _, c := range w.checks {
			c.base = baseline{window: w.history, value: math.NaN(), count: math.NaN()}
		}
		w.chooseLook(0)
		return
	}
	var mu sync.Mutex
	var slowest time.Duration
	w.parallel(ctx, func(ctx context.Context, c *check) {
		if w.history < 2*scrape {
			c.base = baseline{window: w.history, value: math.NaN(), count: math.NaN()}
			c.result.BaselineError = "no history before the deploy"
			return
		}
		began := time.Now() // the source's real answer time, whatever the engine's clock
		v := w.deployVars(true)
		v.Platform = baseVars
		c.measureBaseline(ctx, w.source, v, at, w.history)
		took := time.Since(began)
		mu.Lock()
		slowest = max(slowest, took)
		mu.Unlock()
	})
	w.chooseLook(slowest)
}

// recordSettings writes the measured settings into the report.
func (w *run) recordSettings(scrapeSource string) {
	s := &w.report.Settings
	s.ScrapeInterval = config.FormatDuration(w.scrape)
	if scrapeSource != "" {
		s.ScrapeIntervalSource = scrapeSource
	}
	s.Window = config.FormatDuration(w.window)
	s.BaselineWindow = config.FormatDuration(w.spec.Metrics.BaselineWindow)
	if off := w.spec.Metrics.BaselineOffset; off > 0 {
		s.BaselineOffset = config.FormatDuration(off)
	}
	s.BaselineHistory = config.FormatDuration(w.history)
}

// newChecks builds the checks of the spec with their windows.
func (w *run) newChecks() []*check {
	checks := make([]*check, 0, len(w.spec.Checks))
	for _, cc := range w.spec.Checks {
		win := cc.Window.D()
		if win == 0 {
			win = w.window
		}
		checks = append(checks, newCheck(cc, win))
	}
	return checks
}

// measureScrape reads the scrape interval off the timestamps of the
// target's up series: a range query of timestamp(up) returns, at each
// step, the time of the latest scrape.
func (w *run) measureScrape(ctx context.Context, selector string, at time.Time) (time.Duration, error) {
	qctx, cancel := w.queryContext(ctx)
	defer cancel()
	expr := fmt.Sprintf("timestamp(up{%s})", selector)
	mat, err := w.source.QueryRange(qctx, expr, at.Add(-3*time.Minute), at, 500*time.Millisecond)
	if err != nil {
		return 0, err
	}
	var gaps []float64
	for _, s := range mat {
		var last float64
		for i, p := range s.Points {
			if i > 0 && p.Value > last {
				gaps = append(gaps, p.Value-last)
			}
			last = p.Value
		}
	}
	if len(gaps) == 0 {
		return 0, fmt.Errorf("fewer than two scrapes of %s in the last 3m", expr)
	}
	sort.Float64s(gaps)
	median := gaps[len(gaps)/2]
	return time.Duration(median * float64(time.Second)).Round(10 * time.Millisecond), nil
}

// measureHistory returns how much of the baseline window the source holds
// for the target, judged by its up series.
func (w *run) measureHistory(ctx context.Context, selector string, at time.Time, want, scrape time.Duration) time.Duration {
	qctx, cancel := w.queryContext(ctx)
	defer cancel()
	expr := fmt.Sprintf("count(up{%s})", selector)
	step := max(want/200, scrape/2, 500*time.Millisecond)
	mat, err := w.source.QueryRange(qctx, expr, at.Add(-want), at, step)
	if err != nil {
		w.note("could not measure the history before the deploy (%v); the baseline uses %s", err, config.FormatDuration(want))
		return want
	}
	first := at
	for _, s := range mat {
		if len(s.Points) > 0 && s.Points[0].Time.Before(first) {
			first = s.Points[0].Time
		}
	}
	// A point at a step means a sample within the lookback before it.
	return min(at.Sub(first).Round(time.Second), want)
}

// parallel runs f for every check at once, the round bounded by the query
// bound.
func (w *run) parallel(ctx context.Context, f func(context.Context, *check)) {
	w.parallelOver(ctx, w.checks, f)
}

// parallelOver is parallel for some of the checks.
func (w *run) parallelOver(ctx context.Context, checks []*check, f func(context.Context, *check)) {
	qctx, cancel := w.queryContext(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Go(func() { f(qctx, c) })
	}
	wg.Wait()
}
