// Package judge holds deploywatch's verdict logic: rules, the statistics
// that keep noise from failing a deploy, and the limits that turn single
// measurements into a check's outcome. It does no I/O: every function takes
// numbers and returns a Verdict that carries its own evidence.
package judge

import (
	"fmt"
	"math"
)

// Status is the outcome of one measurement.
type Status int

// The outcomes a measurement can have. NoData means the source answered
// with nothing to judge (no series, no traffic); Error means it could not
// answer. Neither is ever read as zero.
const (
	StatusUnknown Status = iota
	Pass
	Warn
	Fail
	NoData
	Error
)

var statusNames = map[Status]string{
	StatusUnknown: "unknown", Pass: "pass", Warn: "warn", Fail: "fail", NoData: "nodata", Error: "error",
}

func (s Status) String() string { return statusNames[s] }

// MarshalText encodes the status as its lower-case name.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a lower-case status name.
func (s *Status) UnmarshalText(b []byte) error {
	for k, v := range statusNames {
		if v == string(b) {
			*s = k
			return nil
		}
	}
	return fmt.Errorf("unknown status %q", b)
}

// Verdict is one judged measurement with its evidence. Absent numbers are
// NaN (and null in JSON).
type Verdict struct {
	Status Status
	// Value is what was measured: a ratio, seconds, a rate per second.
	Value float64
	// Baseline is the same measurement over the window before the deploy.
	Baseline float64
	// Line is the fail line that was applied, after baseline, floor and
	// breaching-before adjustments.
	Line float64
	// Samples is how many events (requests, observations) the value rests on.
	Samples float64
	// Beyond is how many of them were bad: errors for a share, requests
	// slower than the line for a quantile. A comparison with a control
	// group counts the same on its side.
	Beyond float64
	// Confidence is how sure the statistical test is of this verdict: for a
	// failure, that the true value is beyond the line; otherwise that it is
	// not. NaN for checks without a statistical test.
	Confidence float64
	// BreachingBefore is set when the baseline was already beyond the fail
	// line, so the deploy is judged only on how much worse it made things.
	BreachingBefore bool
	Reason          string
}

func none() Verdict {
	return Verdict{Value: math.NaN(), Baseline: math.NaN(), Line: math.NaN(), Samples: math.NaN(), Beyond: math.NaN(), Confidence: math.NaN()}
}

// NoDataVerdict returns a NoData verdict with the given reason.
func NoDataVerdict(reason string) Verdict {
	v := none()
	v.Status, v.Reason = NoData, reason
	return v
}

// ErrorVerdict returns an Error verdict for a failed measurement.
func ErrorVerdict(err error) Verdict {
	v := none()
	v.Status, v.Reason = Error, err.Error()
	return v
}

// Thresholds are a check's lines and how sure it must be before failing.
type Thresholds struct {
	Warn Rule
	Fail Rule
	// Floor, when set, is the lowest fail line an upward rule may draw, so
	// that "2x a 5 ms baseline" does not fail a deploy at 11 ms.
	Floor    float64
	HasFloor bool
	// Tolerance is how much worse than an already-breaching baseline the new
	// version must be before it is blamed, as a fraction (0.25 = 25% worse).
	Tolerance float64
	// Confidence is the one-sided confidence a statistical check needs to
	// fail, e.g. 0.99. Checks without statistics ignore it.
	Confidence float64
	// Format renders a value of the check in reasons ("1.2%", "48ms").
	// Default: four significant digits.
	Format func(float64) string
	// Test is how the looks of a watch at this check share the chance of
	// failing a healthy release; Look is which look this is (from 1).
	Test Test
	Look int
}

func (t Thresholds) fmt(v float64) string {
	if t.Format != nil {
		return t.Format(v)
	}
	return fmt.Sprintf("%.4g", v)
}

// failLine draws the fail line for a baseline. ok is false when no line can
// be drawn (a relative rule, no baseline and no floor). before is set when
// the baseline already crossed an absolute fail line.
func (t Thresholds) failLine(baseline float64) (line float64, ok, before bool) {
	haveBase := !math.IsNaN(baseline)
	line, ok = t.Fail.Line(baseline, haveBase)
	up := t.Fail.Op.Upward()
	if t.HasFloor && up {
		if !ok || line < t.Floor {
			line, ok = t.Floor, true
		}
	}
	if !ok {
		return 0, false, false
	}
	if haveBase && !t.Fail.Relative && t.Fail.Crosses(baseline, line) {
		before = true
		if up {
			line = math.Max(line, baseline*(1+t.Tolerance))
		} else {
			line = math.Min(line, baseline*(1-t.Tolerance))
		}
	}
	return line, true, before
}

// WarnLine is the warn line drawn for a baseline; ok is false when the
// check has no warn rule or no line can be drawn.
func (t Thresholds) WarnLine(baseline float64) (line float64, ok bool) {
	return t.Warn.Line(baseline, !math.IsNaN(baseline))
}

// warnCrossed reports whether v crosses the warn line.
func (t Thresholds) warnCrossed(v, baseline float64) (line float64, crossed bool) {
	line, ok := t.Warn.Line(baseline, !math.IsNaN(baseline))
	if !ok {
		return math.NaN(), false
	}
	return line, t.Warn.Crosses(v, line)
}

func (t Thresholds) alpha() float64 {
	if t.Confidence <= 0 || t.Confidence >= 1 {
		return 0.01
	}
	return 1 - t.Confidence
}

// stricter returns the thresholds with their risk (1-confidence) divided
// by factor: for a test that is a second way to fail, or to clear, a
// release besides the check's own.
func (t Thresholds) stricter(factor float64) Thresholds {
	t.Confidence = 1 - t.alpha()/factor
	return t
}

// Value judges a plain measurement (a user's PromQL) against absolute or
// baseline-relative lines, without statistics: the check's failure limit
// is what protects it from noise. NaN is NoData; ±Inf is a value.
func Value(v, baseline float64, t Thresholds) Verdict {
	out := none()
	out.Value, out.Baseline = v, baseline
	if math.IsNaN(v) {
		out.Status, out.Reason = NoData, "the query returned NaN (nothing to divide by in the window?)"
		return out
	}
	line, ok, before := t.failLine(baseline)
	out.BreachingBefore = before
	if ok {
		out.Line = line
		if t.Fail.Crosses(v, line) {
			out.Status = Fail
			out.Reason = fmt.Sprintf("%s %s %s", t.fmt(v), t.Fail.Op, t.fmt(line))
			if before {
				out.Reason += fmt.Sprintf(" (already beyond the line before the deploy at %s; worse by more than %g%%)", t.fmt(baseline), t.Tolerance*100)
			}
			return out
		}
	}
	return warnOrPass(out, v, baseline, t, ok)
}

// warnOrPass finishes a verdict that did not fail.
func warnOrPass(out Verdict, v, baseline float64, t Thresholds, haveFailLine bool) Verdict {
	if out.BreachingBefore {
		out.Status = Warn
		out.Reason = fmt.Sprintf("breaching before this deploy (baseline %s, now %s); not significantly worse", t.fmt(baseline), t.fmt(v))
		return out
	}
	if wl, crossed := t.warnCrossed(v, baseline); crossed {
		out.Status = Warn
		out.Reason = fmt.Sprintf("%s %s warn line %s", t.fmt(v), t.Warn.Op, t.fmt(wl))
		return out
	}
	out.Status = Pass
	if !haveFailLine && !t.Fail.IsZero() {
		out.Reason = "no baseline to draw the fail line from; judged on the warn line only"
	}
	return out
}

// Counts are the events behind a ratio: Bad of Total.
type Counts struct {
	Bad, Total float64
}

// Ratio returns Bad/Total, or NaN when there is no total.
func (c Counts) Ratio() float64 {
	if !(c.Total > 0) {
		return math.NaN()
	}
	return c.bad() / c.Total
}

// Since is what was counted between prev and c, two measurements of
// counts since a fixed start: counts below prev (a high-water mark), as
// extrapolated counts can be, are read as none.
func (c Counts) Since(prev Counts) Counts {
	total := max(c.Total-prev.Total, 0)
	return Counts{Bad: min(max(c.Bad-prev.Bad, 0), total), Total: total}
}

// HighWater is the larger of c and cur, count by count: the high-water
// mark of counts that should only grow.
func (c Counts) HighWater(cur Counts) Counts {
	return Counts{Bad: max(c.Bad, cur.Bad), Total: max(c.Total, cur.Total)}
}

// bad is Bad clamped to [0, Total]: extrapolated counts can overshoot, and
// a missing count (NaN) of bad events among counted ones is none.
func (c Counts) bad() float64 {
	b := math.Min(math.Max(c.Bad, 0), c.Total)
	if math.IsNaN(b) {
		return 0
	}
	return b
}

// Ratio judges a ratio of counted events, such as 5xx responses among all
// requests. It fails only when an exact one-sided binomial test is at least
// t.Confidence sure that the true rate is beyond the fail line, and only
// once minTotal events were counted, so a handful of requests cannot roll a
// deploy back. base may be the zero Counts when there is no baseline.
func Ratio(obs, base Counts, minTotal float64, t Thresholds) Verdict {
	out := none()
	out.Baseline = base.Ratio()
	if math.IsNaN(obs.Total) || obs.Total <= 0 {
		out.Status, out.Reason = NoData, "no requests counted"
		out.Samples = 0
		return out
	}
	bad := obs.bad()
	out.Value, out.Samples, out.Beyond = bad/obs.Total, obs.Total, bad
	if obs.Total < minTotal {
		out.Status = NoData
		out.Reason = fmt.Sprintf("too little traffic to judge: %.0f requests, need %.0f", obs.Total, minTotal)
		return out
	}
	// A baseline counted on fewer requests than a verdict needs says
	// nothing: one error in five requests must neither raise the line nor
	// excuse a regression. It is still reported.
	judgedBase := out.Baseline
	if !(base.Total >= minTotal) {
		judgedBase, base = math.NaN(), Counts{}
	}
	line, ok, before := t.failLine(judgedBase)
	out.BreachingBefore = before
	if !ok {
		return warnOrPass(out, out.Value, judgedBase, t, false)
	}
	out.Line = line
	pBeyond := t.pBinomialBeyond(bad, obs.Total, line)
	var pWithin float64 // the p-value of "within the line", for a passing look's confidence
	if t.Fail.Op.Upward() {
		pWithin = binomialAtMost(bad, obs.Total, line)
	} else {
		pWithin = binomialAtLeast(bad, obs.Total, line)
	}
	if t.Fail.Crosses(out.Value, line) {
		out.Confidence = 1 - pBeyond
		if pBeyond <= t.level() && !t.worseThanBefore(bad, obs.Total, base, before) {
			out.Status = Warn
			out.Reason = fmt.Sprintf("%s of %.0f requests %s %s, but before the deploy it was %s of %.0f requests, maybe beyond the line already: not significantly more than %g%% worse",
				pct(out.Value), obs.Total, t.Fail.Op, pct(line), pct(out.Baseline), base.Total, t.Tolerance*100)
			return out
		}
		if pBeyond <= t.level() {
			out.Status = Fail
			out.Reason = fmt.Sprintf("%s of %.0f requests %s %s (%s sure)",
				pct(out.Value), obs.Total, t.Fail.Op, pct(line), sure(out.Confidence))
			if before {
				out.Reason += fmt.Sprintf("; already %s before the deploy", pct(out.Baseline))
			}
			return out
		}
		out.Status = Warn
		out.Reason = fmt.Sprintf("%s %s %s, but %.0f requests are not enough to be sure yet (%s)",
			pct(out.Value), t.Fail.Op, pct(line), obs.Total, t.shortOf(pBeyond))
		return out
	}
	out.Confidence = 1 - pWithin
	return warnOrPass(out, out.Value, judgedBase, t, true)
}

// worseThanBefore reports whether bad of total is significantly worse than
// the baseline counts, by more than the tolerance, when the baseline may
// itself be beyond an absolute upward line: when it was measured beyond it
// (before), or near it (at least half the line) on too few requests to
// show it under the line. A baseline of a few hundred requests can read
// 1% when the service has always run at 2%; blaming the deploy for the 2%
// would roll back on noise. The test is the exact conditional one for two
// rates: of all bad events, before and after, under "the new rate is
// (1+tolerance) times the old" the share after is binomial. Any other case
// (a relative or downward rule, no baseline, a baseline clearly under the
// line) reports true: there is nothing to excuse.
func (t Thresholds) worseThanBefore(bad, total float64, base Counts, before bool) bool {
	if t.Fail.Relative || !t.Fail.Op.Upward() || !(base.Total > 0) {
		return true
	}
	baseBad := base.bad()
	line := t.Fail.Value
	near := baseBad/base.Total >= line/2 && binomialAtMost(baseBad, base.Total, line) > t.alpha()
	if !before && !near {
		return true
	}
	return worseThanP(bad, total, baseBad, base.Total, 1+t.Tolerance) <= t.fixedLevel()
}

// Rate judges how often something happens, count events over seconds,
// against a line such as "< 0.2x baseline". A collapse of the request rate
// fails only when an exact Poisson test is t.Confidence sure the true rate
// is beyond the line: at 1 req/s one empty second proves nothing, at
// 50 req/s it does.
func Rate(count, seconds, baseCount, baseSeconds float64, t Thresholds) Verdict {
	out := none()
	if baseSeconds > 0 && !math.IsNaN(baseCount) {
		out.Baseline = baseCount / baseSeconds
	}
	if math.IsNaN(count) || !(seconds > 0) {
		out.Status, out.Reason = NoData, "nothing counted in the window"
		return out
	}
	count = math.Max(count, 0)
	out.Value, out.Samples = count/seconds, count
	line, ok, before := t.failLine(out.Baseline)
	out.BreachingBefore = before
	if !ok {
		return warnOrPass(out, out.Value, out.Baseline, t, false)
	}
	out.Line = line
	mean := line * seconds
	pBeyond := t.pPoissonBeyond(count, mean)
	var pWithin float64
	if t.Fail.Op.Upward() {
		pWithin = poissonAtMost(count, mean)
	} else {
		pWithin = poissonAtLeast(count, mean)
	}
	if t.Fail.Crosses(out.Value, line) {
		out.Confidence = 1 - pBeyond
		if pBeyond <= t.level() {
			out.Status = Fail
			out.Reason = fmt.Sprintf("%.3g/s over %.0fs %s %.3g/s (baseline %.3g/s; %s sure)",
				out.Value, seconds, t.Fail.Op, line, out.Baseline, sure(out.Confidence))
			return out
		}
		out.Status = Warn
		out.Reason = fmt.Sprintf("%.3g/s %s %.3g/s, but %.0f events in %.0fs are not enough to be sure yet (%s)",
			out.Value, t.Fail.Op, line, count, seconds, t.shortOf(pBeyond))
		return out
	}
	out.Confidence = 1 - pWithin
	return warnOrPass(out, out.Value, out.Baseline, t, true)
}

// Quantile judges a latency quantile computed from a histogram, such as
// p99 against "> 2x baseline". The q-quantile is beyond a line L exactly
// when more than (1-q) of the observations are beyond L, so the test is a
// binomial one on the count of observations above L: it fails only when
// t.Confidence sure, and only once minCount observations exist.
func Quantile(h, base Histogram, q, minCount float64, t Thresholds) Verdict {
	out := none()
	if base.Count() >= minCount {
		out.Baseline = base.Quantile(q)
	}
	n := h.Count()
	out.Samples = n
	if !(n > 0) {
		out.Status, out.Reason = NoData, "no observations in the histogram"
		return out
	}
	out.Value = h.Quantile(q)
	if n < minCount {
		out.Status = NoData
		out.Reason = fmt.Sprintf("too few observations to judge p%s: %.0f, need %.0f", quantileName(q), n, minCount)
		return out
	}
	line, ok, before := t.failLine(out.Baseline)
	out.BreachingBefore = before
	if !ok {
		return warnOrPass(out, out.Value, out.Baseline, t, false)
	}
	out.Line = line
	above := h.Beyond(line).Bad
	out.Beyond = above
	tail := 1 - q
	// The line is crossed by more than tail of the observations above it.
	pBeyond := t.pAbove(above, n, tail)
	pWithin := binomialAtMost(above, n, tail)
	if t.Fail.Crosses(out.Value, line) {
		out.Confidence = 1 - pBeyond
		if pBeyond <= t.level() {
			out.Status = Fail
			out.Reason = fmt.Sprintf("p%s %s %s %s: %.0f of %.0f requests slower (%s sure)",
				quantileName(q), secs(out.Value), t.Fail.Op, secs(line), above, n, sure(out.Confidence))
			if before {
				out.Reason += fmt.Sprintf("; already %s before the deploy", secs(out.Baseline))
			}
			return out
		}
		out.Status = Warn
		out.Reason = fmt.Sprintf("p%s %s %s %s, but %.0f observations are not enough to be sure yet (%s)",
			quantileName(q), secs(out.Value), t.Fail.Op, secs(line), n, t.shortOf(pBeyond))
		return out
	}
	out.Confidence = 1 - pWithin
	return warnOrPass(out, out.Value, out.Baseline, t, true)
}

func pct(v float64) string { return fmt.Sprintf("%.3g%%", 100*v) }

// sure renders a confidence with as many digits as tell it from
// certainty (99%, 99.98%), never rounded up to a certainty it is not.
func sure(c float64) string {
	switch {
	case math.IsNaN(c):
		return "not known how"
	case c < 0.99:
		return fmt.Sprintf("%.1f%%", 100*c)
	case 1-c < 1e-5:
		return "over 99.999%"
	}
	digits := max(0, int(math.Ceil(-math.Log10(1-c)))-2)
	return fmt.Sprintf("%.*f%%", digits, math.Floor(100*c*math.Pow10(digits))/math.Pow10(digits))
}

func secs(v float64) string {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return fmt.Sprint(v)
	}
	if v < 1 {
		return fmt.Sprintf("%.3gms", v*1000)
	}
	return fmt.Sprintf("%.3gs", v)
}

func quantileName(q float64) string { return fmt.Sprintf("%g", q*100) }

// Num returns a pointer to v, or nil when v is NaN or infinite (which JSON
// cannot carry). Infinite values are rare in verdicts (a quantile in the
// +Inf bucket is reported as the highest finite bound) and their reason
// says so.
func Num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}
