package watch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/metrics"
)

// check is one configured check during a watch.
type check struct {
	cfg     config.Check
	window  time.Duration
	th      judge.Thresholds
	tracker judge.Tracker
	base    baseline
	result  *CheckResult
	// frozen is set once the check failed or gave up: its result is then
	// the decisive measurement and stays.
	frozen bool
	// undecided is the reason of the last look that measured, when the
	// check was beyond its line there and the control group could neither
	// blame the release nor show a shared cause: a monitor that ends so is
	// inconclusive. A look that measured nothing, or that is beyond the
	// line but not yet sure, keeps it.
	undecided string
	// comparisons counts the comparisons made with the control group so
	// far (the warm-up's, side by side's and the monitor's; not those it
	// had too little traffic for): their tests spend the check's
	// confidence over them.
	comparisons int
	// noDataStreak counts looks in a row without data since the deploy,
	// the first of them at noDataSince.
	noDataStreak int
	noDataSince  time.Time
	// side is the rollout's side-by-side comparison.
	side sideState
}

// baseline is a check's measurement over the window before the deploy.
type baseline struct {
	// at is when the window ended: the deploy's start, or baseline.offset
	// before it.
	at     time.Time
	window time.Duration
	// hasData is set when the baseline measured something.
	hasData bool
	value   float64
	counts  judge.Counts
	hist    judge.Histogram
	count   float64
}

func newCheck(cfg config.Check, window time.Duration) *check {
	th := judge.Thresholds{
		Warn: cfg.Warn.Rule, Fail: cfg.Fail.Rule,
		Confidence: cfg.Confidence,
		Format:     func(v float64) string { return formatValue(v, cfg.Unit) },
		Test:       cfg.Test(),
	}
	if cfg.Tolerance != nil {
		th.Tolerance = float64(*cfg.Tolerance)
	}
	if cfg.Floor != nil {
		th.Floor, th.HasFloor = float64(*cfg.Floor), true
	}
	c := &check{
		cfg: cfg, window: window, th: th,
		tracker: judge.Tracker{Limits: judge.Limits{Failures: cfg.Failures(), Errors: cfg.ErrorLimit}},
	}
	c.result = &CheckResult{
		Name: cfg.Name, Type: cfg.Type, Rule: cfg.Fail.String(), WarnRule: cfg.Warn.String(),
		Window: config.RangeString(window), Unit: cfg.Unit, Verdict: judge.StatusUnknown,
		Test: th.Test.String(), Statistic: cfg.Statistic,
	}
	if cfg.Type == config.TypeQuery {
		c.result.Test = "" // no statistics: the failure limit decides
	}
	if cfg.Mode == config.ModeReport {
		c.result.Mode = config.ModeReport
	}
	return c
}

// enforced reports whether the check's failure fails the deploy.
func (c *check) enforced() bool { return c.cfg.Mode != config.ModeReport }

// rangeOf rounds a range as the query will see it (whole seconds).
func rangeOf(d time.Duration) time.Duration {
	return max(((d+time.Second-1)/time.Second)*time.Second, time.Second)
}

// expr expands the check's template for role.
func (c *check) expr(role string, v config.Vars) (string, error) {
	out, err := config.Expand(c.cfg.QueryFor(role), v)
	if err != nil {
		return "", fmt.Errorf("check %s: %w", c.cfg.Name, err)
	}
	return out, nil
}

// evidenceQuery is the PromQL a user can paste into Grafana to see the
// check's value.
func (c *check) evidenceQuery(v config.Vars) string {
	q := func(role string) string { s, _ := c.expr(role, v); return s }
	switch c.cfg.Type {
	case config.TypeRatio:
		return fmt.Sprintf("(%s) / (%s)", q("bad"), q("total"))
	case config.TypeQuantile:
		return fmt.Sprintf("histogram_quantile(%g, %s)", c.cfg.Quantile, q("histogram"))
	case config.TypeRate:
		return fmt.Sprintf("(%s) / %d", q("count"), int(rangeOf(v.Window).Seconds()))
	}
	return q("query")
}

// measureBaseline measures the check over the window that ends at the
// deploy's start.
func (c *check) measureBaseline(ctx context.Context, src Querier, v config.Vars, at time.Time, window time.Duration) {
	c.base = baseline{at: at, window: window, value: math.NaN(), count: math.NaN()}
	v.Window, v.SinceDeploy, v.SinceWarmup = window, window, window
	var err error
	switch c.cfg.Type {
	case config.TypeQuery:
		c.base.value, c.base.hasData, err = c.scalar(ctx, src, "query", v, at)
	case config.TypeRatio:
		c.base.counts, c.base.hasData, err = c.counts(ctx, src, v, at)
	case config.TypeQuantile:
		c.base.hist, err = c.histogram(ctx, src, v, at)
		c.base.hasData = c.base.hist.Count() > 0
	case config.TypeRate:
		c.base.count, c.base.hasData, err = c.scalar(ctx, src, "count", v, at)
		c.base.window = rangeOf(window)
	}
	c.result.BaselineWindow = config.RangeString(window)
	if err != nil {
		c.result.BaselineError = err.Error()
	}
	c.result.Baseline = judge.Num(c.baselineValue())
}

// baselineValue is the baseline in the check's own unit.
func (c *check) baselineValue() float64 {
	if !c.base.hasData {
		return math.NaN()
	}
	switch c.cfg.Type {
	case config.TypeRatio:
		return c.base.counts.Ratio()
	case config.TypeQuantile:
		if c.base.hist.Count() < c.cfg.MinRequests {
			return math.NaN()
		}
		return c.base.hist.Quantile(c.cfg.Quantile)
	case config.TypeRate:
		return c.base.count / c.base.window.Seconds()
	}
	return c.base.value
}

// endOn records a check's deciding verdict and what it was compared with,
// freezes it, announces the breach and ends the watch: inconclusive for a
// shared cause the control group showed, a failure otherwise.
func (w *run) endOn(c *check, verdict judge.Verdict, cmp comparedWith, v config.Vars, at time.Time, outcome judge.ControlOutcome) error {
	c.tracker.Observe(verdict.Status)
	c.record(verdict, v, at)
	c.result.Comparison, c.result.Control = cmp.by, cmp.value
	c.frozen = true
	breach := *c.result
	w.emit(Event{Kind: event.Breached, Check: &breach, Message: c.cfg.Name + ": " + verdict.Reason})
	if outcome == judge.ControlShared {
		return &inconclusive{reason: c.cfg.Name + ": " + verdict.Reason}
	}
	return &failure{reason: c.cfg.Name + ": " + verdict.Reason}
}

// minControlEvents is how many events a control group must be expected to
// count in a check's window before its rate can excuse a rise of the
// release's.
const minControlEvents = 10

// compareControlRate asks whether the control group's rate moved as far
// against its own baseline, over the same window: the release's line, as
// a multiple of the release's baseline, is drawn on the control group's
// baseline, so groups of any size compare. A drop (or rise) the control
// group shares is upstream of the release (a shared cause); one it did not
// share is the release's. A control group too quiet to prove even a full
// stop, or one that cannot be measured, leaves the decision to the line.
func (c *check) compareControlRate(ctx context.Context, src Querier, cv config.Vars, at time.Time, verdict judge.Verdict, th judge.Thresholds) (out judge.Verdict, cmp comparedWith, outcome judge.ControlOutcome) {
	releaseBase := c.baselineValue()
	if c.base.at.IsZero() || !(releaseBase > 0) || math.IsInf(releaseBase, 0) {
		verdict.Reason += "; the control group cannot be compared without the release's baseline rate"
		return verdict, cmp, judge.ControlNone
	}
	bv := cv
	bv.Window, bv.SinceDeploy, bv.SinceWarmup = c.base.window, c.base.window, c.base.window
	base, okBase, errBase := c.scalar(ctx, src, "count", bv, c.base.at)
	now, okNow, errNow := c.scalar(ctx, src, "count", cv, at)
	if errBase != nil || errNow != nil || !okBase || !okNow || !isFinite(base) || !isFinite(now) || base < 0 || now < 0 {
		verdict.Reason += "; the control group could not be measured"
		return verdict, cmp, judge.ControlNone
	}
	secs, baseSecs := rangeOf(cv.Window).Seconds(), c.base.window.Seconds()
	th.Fail = judge.Rule{Op: c.cfg.Fail.Op, Value: verdict.Line / releaseBase, Relative: true}
	th.HasFloor = false
	quiet := base/baseSecs*secs < minControlEvents
	if !c.cfg.Fail.Op.Upward() {
		quiet = judge.Rate(0, secs, base, baseSecs, th).Status != judge.Fail
	}
	if quiet {
		verdict.Reason += fmt.Sprintf("; the control group is too quiet to compare (%.1f events expected in the window)", base/baseSecs*secs)
		return verdict, cmp, judge.ControlNone // the line decides
	}
	cvv := judge.Rate(now, secs, base, baseSecs, th)
	cmp = comparedWith{by: ComparisonControl, value: judge.Num(now / secs)}
	seen := fmt.Sprintf("the control group: %s over the same time, %s before the deploy",
		formatValue(now/secs, c.cfg.Unit), formatValue(base/baseSecs, c.cfg.Unit))
	if cvv.Status == judge.Fail {
		verdict.Status = judge.Warn
		verdict.Reason += "; but " + seen + ": beyond the line too, so a shared cause upstream, not this release"
		return verdict, cmp, judge.ControlShared
	}
	verdict.Reason += "; " + seen + ", which held"
	return verdict, cmp, judge.ControlBlames
}

// judgedBaseline is the baseline an error share's line is drawn from:
// none when it was counted on fewer requests than a verdict needs, as
// judge.Ratio has it.
func (c *check) judgedBaseline() float64 {
	if !c.base.hasData || !(c.base.counts.Total >= c.cfg.MinRequests) {
		return math.NaN()
	}
	return c.base.counts.Ratio()
}

// measure takes one measurement and judges it as the check's next look.
func (c *check) measure(ctx context.Context, src Querier, v config.Vars, at time.Time) judge.Verdict {
	return c.measureWith(ctx, src, v, at, c.th.AtLook(c.tracker.Measured()+1))
}

// measureWith takes one measurement and judges it against th.
func (c *check) measureWith(ctx context.Context, src Querier, v config.Vars, at time.Time, th judge.Thresholds) judge.Verdict {
	var out judge.Verdict
	switch c.cfg.Type {
	case config.TypeQuery:
		s, ok, err := c.sample(ctx, src, "query", v, at)
		switch {
		case err != nil:
			return judge.ErrorVerdict(err)
		case !ok:
			out = judge.NoDataVerdict("the query returned no series")
			out.Baseline = c.baselineValue()
		case s.Count > 0 && s.Count < c.cfg.MinRequests:
			// The source said how many observations the value sums up:
			// too few to act on.
			out = judge.NoDataVerdict(fmt.Sprintf("too few samples to judge: %.0f, need %.0f", s.Count, c.cfg.MinRequests))
			out.Value, out.Samples, out.Baseline = s.Value, s.Count, c.baselineValue()
		default:
			out = judge.Value(s.Value, c.baselineValue(), th)
			if s.Count > 0 {
				out.Samples = s.Count
			}
		}
	case config.TypeRatio:
		counts, ok, err := c.counts(ctx, src, v, at)
		if err != nil {
			return judge.ErrorVerdict(err)
		}
		if !ok {
			counts = judge.Counts{Bad: math.NaN(), Total: math.NaN()}
		}
		base := c.base.counts
		if !c.base.hasData {
			base = judge.Counts{}
		}
		out = judge.Ratio(counts, base, c.cfg.MinRequests, th)
	case config.TypeQuantile:
		h, err := c.histogram(ctx, src, v, at)
		if err != nil {
			return judge.ErrorVerdict(err)
		}
		out = judge.Quantile(h, c.base.hist, c.cfg.Quantile, c.cfg.MinRequests, th)
	case config.TypeRate:
		count, ok, err := c.scalar(ctx, src, "count", v, at)
		if err != nil {
			return judge.ErrorVerdict(err)
		}
		if !ok {
			count = math.NaN()
		}
		baseCount := c.base.count
		if !c.base.hasData {
			baseCount = math.NaN()
		}
		out = judge.Rate(count, rangeOf(v.Window).Seconds(), baseCount, c.base.window.Seconds(), th)
	}
	return c.applyNoData(out, at)
}

// measureEarly measures an error share during the warm-up and judges it
// by the warm-up's strict test: only an overwhelming failure counts.
func (c *check) measureEarly(ctx context.Context, src Querier, v config.Vars, at time.Time) judge.Verdict {
	counts, ok, err := c.counts(ctx, src, v, at)
	if err != nil || !ok {
		return judge.NoDataVerdict("nothing counted yet")
	}
	base := c.base.counts
	if !c.base.hasData {
		base = judge.Counts{}
	}
	return judge.Overwhelming(counts, base, c.cfg.MinRequests, c.th)
}

// compareControl measures a failing check on the control group over the
// same time and lets the comparison decide (the outcome says which way):
// the failure stands when the release is significantly worse than the
// control group; it is a shared cause when the control group is beyond
// the line too and the release no worse than it; otherwise the look only
// warns, undecided. An error share is compared as it is; a latency
// quantile as the share of requests slower than its fail line (the
// control group's is beyond the line when more than 1-q of its requests
// are slower). Other checks, and a watch without a control group, keep
// their verdict (judge.ControlNone).
//
// Each comparison made (one that did not leave it to the line) is counted:
// the comparisons' tests spend the check's confidence over them.
func (c *check) compareControl(ctx context.Context, src Querier, control string, v config.Vars, at time.Time, verdict judge.Verdict) (out judge.Verdict, cmp comparedWith, outcome judge.ControlOutcome) {
	if control == "" || verdict.Status != judge.Fail || math.IsNaN(verdict.Line) {
		return verdict, cmp, judge.ControlNone // not a statistical failure (no data, say): nothing to compare
	}
	cv := v
	cv.Selector = control
	th := c.th.AtLook(c.comparisons + 1)
	if c.cfg.Type == config.TypeRate {
		out, cmp, outcome = c.compareControlRate(ctx, src, cv, at, verdict, th)
	} else {
		out, cmp, outcome = c.compareControlShare(ctx, src, cv, at, verdict, th)
	}
	if outcome != judge.ControlNone {
		c.comparisons++
	}
	return out, cmp, outcome
}

// compareControlShare is compareControl for an error share or a latency
// quantile.
func (c *check) compareControlShare(ctx context.Context, src Querier, cv config.Vars, at time.Time, verdict judge.Verdict, th judge.Thresholds) (out judge.Verdict, cmp comparedWith, outcome judge.ControlOutcome) {
	if !(verdict.Samples > 0) {
		return verdict, cmp, judge.ControlNone
	}
	// The verdict's own bad events, measured on the control group too.
	obs := judge.Counts{Bad: verdict.Beyond, Total: verdict.Samples}
	var ctl judge.Counts
	var line, ctlValue float64
	what := ""
	switch c.cfg.Type {
	case config.TypeRatio:
		counts, ok, err := c.counts(ctx, src, cv, at)
		if err != nil || !ok {
			verdict.Reason += "; the control group could not be measured"
			return verdict, cmp, judge.ControlNone
		}
		ctl, line, ctlValue = counts, verdict.Line, counts.Ratio()
	case config.TypeQuantile:
		h, err := c.histogram(ctx, src, cv, at)
		if err != nil || !(h.Count() > 0) {
			verdict.Reason += "; the control group could not be measured"
			return verdict, cmp, judge.ControlNone
		}
		ctl, line, ctlValue = h.Beyond(verdict.Line), 1-c.cfg.Quantile, h.Quantile(c.cfg.Quantile)
		what = " slower than " + formatValue(verdict.Line, c.cfg.Unit)
	default:
		return verdict, cmp, judge.ControlNone
	}
	outcome, why := judge.AgainstControl(obs, ctl, c.cfg.MinRequests, line, what, th)
	if outcome == judge.ControlNone {
		verdict.Reason += "; " + why
		return verdict, cmp, outcome // the line decided, not the control group
	}
	cmp = comparedWith{by: ComparisonControl, value: judge.Num(ctlValue)}
	if outcome == judge.ControlBlames {
		verdict.Reason += "; " + why
	} else {
		verdict.Status = judge.Warn
		verdict.Reason += "; but " + why
	}
	return verdict, cmp, outcome
}

// applyNoData turns no data into a warning or a failure when the check
// says so, and only when the baseline had data: what was measurable before
// the deploy and is gone after it is a symptom.
//
// No data is not a statistical finding, so an empty look only warns:
// on_nodata: fail fails once the looks have been empty for two windows in
// a row (and at least two looks). A scrape that came late, or a metric
// source that restarted and lost a few scrapes, empties a window for less
// than that; series that are gone stay gone.
func (c *check) applyNoData(v judge.Verdict, at time.Time) judge.Verdict {
	if v.Status != judge.NoData {
		c.noDataStreak = 0
	}
	if v.Status != judge.NoData || !c.base.hasData {
		return v
	}
	c.noDataStreak++
	if c.noDataStreak == 1 {
		c.noDataSince = at
	}
	switch c.cfg.OnNoData {
	case config.NoDataFail:
		v.Status = judge.Fail
		if c.noDataStreak < 2 || at.Sub(c.noDataSince) < 2*c.window {
			v.Status = judge.Warn
		}
	case config.NoDataWarn:
		v.Status = judge.Warn
	default:
		return v
	}
	v.Reason = fmt.Sprintf("no data since the deploy, but there was before it (baseline %s): %s",
		formatValue(c.baselineValue(), c.cfg.Unit), v.Reason)
	return v
}

// scalar runs a query that must give at most one series.
func (c *check) scalar(ctx context.Context, src Querier, role string, v config.Vars, at time.Time) (float64, bool, error) {
	s, ok, err := c.sample(ctx, src, role, v, at)
	if !ok || err != nil {
		return math.NaN(), ok, err
	}
	return s.Value, true, nil
}

// sample runs a query that must give at most one series, and returns its
// one sample.
func (c *check) sample(ctx context.Context, src Querier, role string, v config.Vars, at time.Time) (metrics.Sample, bool, error) {
	expr, err := c.expr(role, v)
	if err != nil {
		return metrics.Sample{}, false, err
	}
	vec, err := src.Query(ctx, expr, at)
	if err != nil {
		return metrics.Sample{}, false, err
	}
	switch len(vec) {
	case 0:
		return metrics.Sample{}, false, nil
	case 1:
		return vec[0], true, nil
	}
	return metrics.Sample{}, false, fmt.Errorf("%w: %s returned %d series, a check needs one value: aggregate it (sum() or max() in PromQL)",
		metrics.ErrBadQuery, role, len(vec))
}

// counts runs a ratio's two queries. An empty numerator with a counted
// denominator is zero bad events: counters of errors often do not exist
// until the first error.
func (c *check) counts(ctx context.Context, src Querier, v config.Vars, at time.Time) (judge.Counts, bool, error) {
	total, ok, err := c.scalar(ctx, src, "total", v, at)
	if err != nil || !ok {
		return judge.Counts{}, false, err
	}
	bad, hasBad, err := c.scalar(ctx, src, "bad", v, at)
	if err != nil {
		return judge.Counts{}, false, err
	}
	if !hasBad {
		bad = 0
	}
	return judge.Counts{Bad: bad, Total: total}, true, nil
}

// histogram runs a quantile's bucket query: one series per "le".
func (c *check) histogram(ctx context.Context, src Querier, v config.Vars, at time.Time) (judge.Histogram, error) {
	expr, err := c.expr("histogram", v)
	if err != nil {
		return nil, err
	}
	vec, err := src.Query(ctx, expr, at)
	if err != nil {
		return nil, err
	}
	if len(vec) == 0 {
		return nil, nil
	}
	buckets := make([]judge.Bucket, 0, len(vec))
	seen := map[float64]bool{}
	for _, s := range vec {
		le, ok := s.Labels["le"]
		if !ok {
			return nil, fmt.Errorf("%w: the histogram query must return one series per le label (sum by (le) (...)); got %s",
				metrics.ErrBadQuery, s.Labels)
		}
		ub, err := strconv.ParseFloat(le, 64)
		if err != nil {
			return nil, fmt.Errorf("bucket le=%q: %w", le, err)
		}
		if seen[ub] {
			return nil, fmt.Errorf("%w: the histogram query returns bucket le=%q twice: aggregate by le alone", metrics.ErrBadQuery, le)
		}
		seen[ub] = true
		buckets = append(buckets, judge.Bucket{UpperBound: ub, Count: s.Value})
	}
	h := judge.NewHistogram(buckets)
	if h == nil {
		return nil, errors.New("the histogram has no +Inf bucket or too few buckets")
	}
	return h, nil
}

// record stores a verdict as the check's standing, unless the check is
// already decided.
func (c *check) record(v judge.Verdict, vars config.Vars, at time.Time) {
	if c.frozen {
		return
	}
	r := c.result
	r.Verdict = v.Status
	r.Value, r.Line, r.Samples, r.Confidence = judge.Num(v.Value), judge.Num(v.Line), judge.Num(v.Samples), judge.Num(v.Confidence)
	if b := judge.Num(v.Baseline); b != nil {
		r.Baseline = b
	}
	if r.Baseline != nil {
		if wl, ok := c.th.WarnLine(*r.Baseline); ok {
			r.WarnLine = judge.Num(wl)
		}
	} else if wl, ok := c.th.WarnLine(math.NaN()); ok {
		r.WarnLine = judge.Num(wl)
	}
	r.Reason = v.Reason
	r.BreachingBefore = v.BreachingBefore
	r.Control, r.Comparison = nil, "" // set again by a comparison with the control group
	r.Query = c.evidenceQuery(vars)
	r.MeasuredAt = at
	r.Measurements = c.tracker.Measured()
	if c.tracker.Failed() || c.tracker.GaveUp() {
		c.frozen = true
	}
}

// formatValue renders a value in its unit, for humans.
func formatValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "none"
	}
	if math.IsInf(v, 0) {
		return fmt.Sprint(v)
	}
	switch unit {
	case "percent":
		return strconv.FormatFloat(100*v, 'g', 3, 64) + "%"
	case "seconds":
		if math.Abs(v) < 1 {
			return strconv.FormatFloat(v*1000, 'g', 3, 64) + "ms"
		}
		return strconv.FormatFloat(v, 'g', 3, 64) + "s"
	case "bytes":
		return strconv.FormatFloat(v/(1<<20), 'g', 3, 64) + "Mi"
	case "persecond":
		return strconv.FormatFloat(v, 'g', 3, 64) + "/s"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// FormatValue renders a check's value in its unit ("1.2%", "48ms", "50/s").
func FormatValue(v *float64, unit string) string {
	if v == nil {
		return "none"
	}
	return formatValue(*v, unit)
}
