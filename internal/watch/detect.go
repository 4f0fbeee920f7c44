package watch

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/judge"
)

// Detectability is what one check can see in a watch, worked out at Start
// from the traffic the baseline counted, the monitor window and the test:
// the expected counts, not a promise (real counts scatter around them).
type Detectability struct {
	Check string `json:"check"`
	// Rate is the events a second the check counted before the deploy.
	Rate *float64 `json:"rate"`
	// Events is how many the monitor window counts at that rate.
	Events *float64 `json:"events"`
	// Smallest is the smallest regression the check can prove within the
	// monitor: an error share, a share of requests slower than the latency
	// line, or for a rate's collapse the highest rate proven too low.
	Smallest *float64 `json:"smallest"`
	// Regression is a reference regression (the warm-up's crash line: 5x
	// the fail line) and RegressionSeconds how long proving it takes.
	Regression        *float64 `json:"regression,omitempty"`
	RegressionSeconds *float64 `json:"regression_seconds,omitempty"`
	// CanJudge is false when the monitor window cannot prove the
	// reference regression (or anything).
	CanJudge bool   `json:"can_judge"`
	Summary  string `json:"summary"`
}

// planDetection works out each check's Detectability, puts it in the
// report and says it: one line of what the watch can see, and a warning
// for each check that cannot judge within the monitor window.
func (w *run) planDetection() {
	w.report.Detectability = w.report.Detectability[:0]
	var seen []string
	for _, c := range w.checks {
		d := w.detectability(c)
		w.report.Detectability = append(w.report.Detectability, d)
		if !d.CanJudge {
			w.note("%s", d.Summary)
		} else if c.cfg.Type != config.TypeQuery {
			seen = append(seen, d.Summary)
		}
	}
	if len(seen) > 0 {
		w.note("what this watch can see: %s", strings.Join(seen, "; "))
	}
}

// detectability works out what check c can see in this watch.
func (w *run) detectability(c *check) Detectability {
	d := Detectability{Check: c.cfg.Name, CanJudge: true}
	monitor := w.spec.Phases.Monitor
	looks := max(int(monitor/w.lookEvery()), 1)
	th := c.th.AtLook(looks) // a spent test at its last, strictest look
	mon := config.FormatDuration(monitor)
	if c.cfg.Type == config.TypeQuery {
		d.Summary = c.cfg.Name + ": judged on its value (no statistics)"
		return d
	}
	rate := c.baseRate()
	synthetic := ""
	if sr := w.spec.Metrics.SyntheticRate; sr > 0 && c.cfg.Type != config.TypeRate {
		// The synthetic requests are counted as the service's own, also
		// when the baseline counted none (NaN: max would keep the NaN).
		if !(rate > 0) {
			rate = 0
		}
		rate += sr
		synthetic = fmt.Sprintf(" (with %s req/s of synthetic traffic)", formatRate(sr))
	}
	if !(rate > 0) {
		d.CanJudge = false
		d.Summary = fmt.Sprintf("%s: no traffic counted before the deploy: what it can prove cannot be worked out", c.cfg.Name)
		return d
	}
	d.Rate = judge.Num(rate)
	// An accumulating check counts the whole monitor window by its end; a
	// sliding one only ever sees one window at a look.
	counted, span := monitor, "in "+mon
	if !c.cfg.Accumulates() {
		counted, span = rangeOf(c.window), "in one "+config.RangeString(c.window)+" window"
	}
	events := rate * counted.Seconds()
	d.Events = judge.Num(events)
	line := th.FailLine(c.baselineValue())
	if math.IsNaN(line) {
		d.CanJudge = false
		d.Summary = fmt.Sprintf("%s: no fail line can be drawn (a relative rule without a baseline)", c.cfg.Name)
		return d
	}
	switch c.cfg.Type {
	case config.TypeRatio, config.TypeQuantile:
		share, what := line, "an error share"
		if c.cfg.Type == config.TypeQuantile {
			share, what = 1-c.cfg.Quantile, "a share of requests slower than "+formatValue(line, c.cfg.Unit)
		}
		if !(share > 0) {
			d.Summary = fmt.Sprintf("%s: its line is 0: any bad request %s fails it", c.cfg.Name, span)
			return d
		}
		smallest := math.NaN()
		if events >= c.cfg.MinRequests {
			smallest = th.SmallestShare(events, share)
		}
		reg := judge.WarmupLine(share)
		d.Smallest, d.Regression = judge.Num(smallest), judge.Num(reg)
		need := th.EventsToProve(reg, share)
		if secs := max(need, c.cfg.MinRequests) / rate; !math.IsInf(secs, 0) {
			d.RegressionSeconds = judge.Num(secs)
		}
		if math.IsNaN(smallest) || smallest > reg {
			d.CanJudge = false
			proven := "nothing can be proven"
			if !math.IsNaN(smallest) {
				proven = "no share under " + formatValue(smallest, "percent") + " can be proven"
			}
			advice := "raise phases.monitor to " + config.FormatDuration(roundUpMinute(need, rate)) + " or add synthetic traffic (traffic.rate)"
			if !c.cfg.Accumulates() {
				advice = "widen the check's window, count since the warm-up ($since_warmup), or add synthetic traffic (traffic.rate)"
			} else if math.IsInf(need, 0) {
				advice = "add synthetic traffic (traffic.rate)"
			}
			d.Summary = fmt.Sprintf("%s: at %s req/s%s, %s sees %.0f requests: %s; %s",
				c.cfg.Name, formatRate(rate), synthetic, span, events, proven, advice)
			return d
		}
		d.Summary = fmt.Sprintf("%s above %s %s (%.0f requests); %s in ~%s",
			what, formatValue(smallest, "percent"), span, events, formatValue(reg, "percent"), formatSeconds(*d.RegressionSeconds))
		d.Summary = c.cfg.Name + ": " + d.Summary + synthetic
	case config.TypeRate:
		if c.cfg.Fail.Op.Upward() {
			d.Summary = fmt.Sprintf("%s: judged against %s/s (a rise; what it can prove is not worked out)", c.cfg.Name, formatRate(line))
			return d
		}
		win := rangeOf(c.window).Seconds()
		largest := th.LargestProvableRate(line, win)
		d.Smallest = judge.Num(largest)
		if math.IsNaN(largest) {
			d.CanJudge = false
			d.Summary = fmt.Sprintf("%s: at %s/s, a %s window holds %.2g requests at the line: not even a full stop can be proven (vanished series still fail); raise metrics.window",
				c.cfg.Name, formatRate(rate), config.RangeString(c.window), line*win)
			return d
		}
		d.Summary = fmt.Sprintf("%s: a drop to %s/s or less within one %s window", c.cfg.Name, formatRate(largest), config.RangeString(c.window))
	}
	return d
}

// baseRate is the events a second the check counted before the deploy.
func (c *check) baseRate() float64 {
	if !c.base.hasData || !(c.base.window > 0) {
		return math.NaN()
	}
	secs := c.base.window.Seconds()
	switch c.cfg.Type {
	case config.TypeRatio:
		return c.base.counts.Total / secs
	case config.TypeQuantile:
		return c.base.hist.Count() / secs
	case config.TypeRate:
		return c.base.count / secs
	}
	return math.NaN()
}

func formatRate(r float64) string { return fmt.Sprintf("%.3g", r) }

func formatSeconds(s float64) string {
	return config.FormatDuration(time.Duration(math.Ceil(s)) * time.Second)
}

// roundUpMinute is the time events take at rate, in whole minutes.
func roundUpMinute(events, rate float64) time.Duration {
	if math.IsInf(events, 0) || !(rate > 0) {
		return 0
	}
	return time.Duration(math.Ceil(events/rate/60)) * time.Minute
}
