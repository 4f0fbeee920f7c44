package watch

import (
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
)

func TestChooseLook(t *testing.T) {
	ratio := config.Check{Name: "error_rate", Type: config.TypeRatio, Bad: "b", Total: "t"}
	rate := config.Check{Name: "request_rate", Type: config.TypeRate, Count: "c"}
	cases := []struct {
		name    string
		scrape  time.Duration
		budget  float64
		slowest time.Duration
		checks  []config.Check
		want    time.Duration
	}{
		{"a fast source is looked at every scrape", time.Second, 10, 20 * time.Millisecond, []config.Check{ratio, rate}, time.Second},
		{"never more often than half a second", 100 * time.Millisecond, 100, time.Millisecond, []config.Check{ratio}, MinLook},
		{"the budget spaces the looks", time.Second, 1, time.Millisecond, []config.Check{ratio, rate}, 3 * time.Second},
		{"a slow source is asked less often", time.Second, 10, 700 * time.Millisecond, []config.Check{ratio}, 2800 * time.Millisecond},
		{"never less often than the interval", 15 * time.Second, 10, time.Millisecond, []config.Check{ratio}, 10 * time.Second},
		{"a budget of 0 looks every interval", time.Second, 0, time.Millisecond, []config.Check{ratio}, 10 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := &run{Engine: &Engine{spec: Spec{
				Phases:  Phases{Interval: 10 * time.Second},
				Metrics: &MetricsSpec{QueryBudget: c.budget},
			}}, scrape: c.scrape, report: &Report{}}
			for _, cc := range c.checks {
				w.checks = append(w.checks, newCheck(cc, 4*time.Second))
			}
			w.chooseLook(c.slowest)
			if w.look != c.want || w.report.Settings.Look != config.FormatDuration(c.want) {
				t.Errorf("look = %s (report %q), want %s", w.look, w.report.Settings.Look, c.want)
			}
		})
	}
}
