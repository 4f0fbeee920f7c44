package watch

import (
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
)

// MinLook is the shortest time between two looks at the checks, however
// often the source scrapes: a look is a round of queries and an event.
const MinLook = 500 * time.Millisecond

// chooseLook sets how often the monitor measures the checks: as often as
// the data change (every scrape), when the source answers fast and the
// query budget allows it, and never less often than the interval. slowest
// is the slowest baseline measurement: a source that needs a second to
// answer is not asked every second.
func (w *run) chooseLook(slowest time.Duration) {
	interval := w.spec.Phases.Interval
	w.look = interval
	m := w.spec.Metrics
	if m == nil || m.QueryBudget <= 0 || len(w.checks) == 0 {
		w.report.Settings.Look = config.FormatDuration(w.look)
		return
	}
	queries := 0
	for _, c := range w.checks {
		queries += len(c.cfg.Queries())
	}
	budget := time.Duration(float64(queries) / m.QueryBudget * float64(time.Second))
	look := max(w.scrape, budget, 4*slowest, MinLook)
	w.look = min(look.Round(100*time.Millisecond), interval)
	w.report.Settings.Look = config.FormatDuration(w.look)
}

// lookEvery is how often the monitor measures: the look chosen at Start,
// or the interval for a watch without one (no checks, or a state saved
// before looks were chosen).
func (w *run) lookEvery() time.Duration {
	if w.look > 0 {
		return w.look
	}
	return w.spec.Phases.Interval
}
