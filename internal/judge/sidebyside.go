package judge

import (
	"fmt"
	"math"
)

// While a rolling update runs, the old version's pods and the new one's
// serve at the same time, from the same dependencies, to the same users.
// Comparing them side by side takes the time of day and any shared cause
// out of the comparison: what the new pods do worse than the old ones over
// the same seconds, the release did.
//
// "The same seconds" matters: the new pods take a growing share of the
// traffic as the rollout goes on, so a dependency that fails halfway
// through hurts the new pods' running total more than the old pods'. The
// counts are therefore kept per stretch of time between looks (strata),
// and the two sides are compared within each stretch.

// SideBySideStrictness is how much surer than the check's confidence the
// side-by-side comparison must be: it is a second chance to fail a release,
// besides the monitor's, so it spends a tenth of the check's error budget
// (the warm-up's crash test a hundredth), and a healthy release's whole
// watch stays within about 1-confidence per check.
const SideBySideStrictness = 10

// Stratum is what each side counted over one stretch of time: bad events
// (errors, or requests slower than a latency line) among all.
type Stratum struct {
	New, Old Counts
}

// SideBySide judges the new pods' error share against the old pods',
// counted over the same stretches of time. It fails when both hold, each
// at this look's level (the check's confidence made SideBySideStrictness
// times stricter, spent over the looks):
//
//   - the new pods are beyond the line: for an absolute rule, their share
//     is shown beyond it by the check's own test (anytime-valid when the
//     check is sequential); for a relative rule, beyond its floor if it
//     has one;
//   - the new pods are significantly worse than the old ones, by more than
//     the tolerance or, for a relative rule, by more than its factor: the
//     exact conditional test of two rates within each stratum (of the bad
//     events of a stretch, under "the new rate is c times the old" the new
//     side's share is binomial), summed over the strata.
//
// A share beyond the line on both sides is not the release's doing, and
// one that is worse but under the line is not worth a rollback. The line
// reported is drawn with the old pods' share as the baseline. The
// verdict's Baseline is NaN: the old pods' share is in the reason and
// returned as old.
func SideBySide(strata []Stratum, minTotal float64, t Thresholds) (v Verdict, old float64) {
	newC, oldC := sumStrata(strata)
	v, old = none(), oldC.Ratio()
	if !finite(newC) || !finite(oldC) || !(newC.Total > 0) {
		v.Status, v.Reason = NoData, "no requests counted on the new pods"
		return v, old
	}
	v.Value, v.Samples = newC.bad()/newC.Total, newC.Total
	if v, ok := tooLittleToCompare(v, newC.Total, oldC.Total, minTotal, t); !ok {
		return v, old
	}
	line, ok, both := t.failLine(old)
	if !ok {
		v.Status, v.Reason = NoData, "no fail line can be drawn"
		return v, old
	}
	// Beyond the line, on the new pods' own counts.
	pBeyond := 0.0
	if lineOf, ok := t.ownLine(); ok {
		pBeyond = t.sideTest().pBinomialBeyond(newC.bad(), newC.Total, lineOf)
	}
	seen := fmt.Sprintf("new pods %s of %.0f requests, old pods %s of %.0f over the same time",
		pct(v.Value), newC.Total, pct(old), oldC.Total)
	return compareSides(v, strata, line, pBeyond, t.factor(), both, seen, pct, t), old
}

// SideBySideQuantile is SideBySide for a latency quantile, measured as
// histograms over the same stretches of time: the line is drawn from the
// old pods' quantile, and the new pods fail when more than 1-q of their
// requests are shown slower than it and their share of slower requests is
// significantly larger than the old pods' (by more than the tolerance).
func SideBySideQuantile(newSlices, oldSlices []Histogram, q, minCount float64, t Thresholds) (v Verdict, old float64) {
	newH, oldH := SumHistograms(newSlices...), SumHistograms(oldSlices...)
	v, old = none(), math.NaN()
	n, nOld := newH.Count(), oldH.Count()
	if !(n > 0) || math.IsInf(n, 0) || math.IsInf(nOld, 0) {
		v.Status, v.Reason = NoData, "no observations on the new pods"
		return v, old
	}
	v.Value, v.Samples = newH.Quantile(q), n
	if nOld >= minCount {
		old = oldH.Quantile(q)
	}
	if v, ok := tooLittleToCompare(v, n, nOld, minCount, t); !ok {
		return v, old
	}
	line, ok, both := t.failLine(old)
	if !ok {
		v.Status, v.Reason = NoData, "no fail line can be drawn"
		return v, old
	}
	slower := func(h Histogram) Counts {
		return Counts{Bad: max(h.Count()-h.CountAtOrBelow(line), 0), Total: h.Count()}
	}
	strata := make([]Stratum, 0, len(newSlices))
	for i := range min(len(newSlices), len(oldSlices)) {
		strata = append(strata, Stratum{New: slower(newSlices[i]), Old: slower(oldSlices[i])})
	}
	newC, oldC := slower(newH), slower(oldH)
	up := t.sideTest()
	up.Fail.Op = OpGreater
	pBeyond := up.pBinomialBeyond(newC.bad(), n, 1-q)
	seen := fmt.Sprintf("new pods p%s %s (%.0f of %.0f requests slower than %s), old pods %s (%.0f of %.0f) over the same time",
		quantileName(q), secs(v.Value), newC.Bad, n, secs(line), secs(old), oldC.Bad, nOld)
	return compareSides(v, strata, line, pBeyond, 1+t.Tolerance, both, seen, secs, t), old
}

// sideTest is the thresholds the side-by-side tests use: the check's
// confidence made stricter, and spent over the looks even for a check
// judged look by look (whose failure limit does not apply here).
func (t Thresholds) sideTest() Thresholds {
	t.Confidence = 1 - t.alpha()/SideBySideStrictness
	if t.Test == PerLook {
		t.Test = Spent
	}
	return t
}

// ownLine is the line the new pods' share must be shown beyond on its own:
// an absolute rule's value, or a relative rule's floor.
func (t Thresholds) ownLine() (float64, bool) {
	switch {
	case !t.Fail.Relative:
		return t.Fail.Value, true
	case t.HasFloor:
		return t.Floor, true
	}
	return 0, false
}

// factor is how many times the old pods' rate the new pods' must be shown
// to exceed: the tolerance, or a relative rule's factor when larger.
func (t Thresholds) factor() float64 {
	c := 1 + t.Tolerance
	if t.Fail.Relative {
		c = max(c, t.Fail.Value)
	}
	return c
}

// tooLittleToCompare turns v into a NoData verdict when either side has
// too little traffic or the rule is not upward; ok is set otherwise.
func tooLittleToCompare(v Verdict, n, nOld, minTotal float64, t Thresholds) (out Verdict, ok bool) {
	switch {
	case n < minTotal || !(nOld >= minTotal):
		v.Status = NoData
		v.Reason = fmt.Sprintf("too little traffic to compare side by side: %.0f requests on the new pods, %.0f on the old (need %.0f on each)",
			n, max(nOld, 0), minTotal)
		return v, false
	case !t.Fail.Op.Upward():
		v.Status, v.Reason = NoData, "only a rule against too many bad events or too slow requests is compared side by side"
		return v, false
	}
	return v, true
}

// compareSides decides: the new pods' value v.Value must be beyond the
// line, shown so (pBeyond), and their bad events significantly more than
// c times the old pods' rate, stratum by stratum.
func compareSides(v Verdict, strata []Stratum, line, pBeyond, c float64, both bool, seen string, format func(float64) string, t Thresholds) Verdict {
	st := t.sideTest()
	v.Line = line
	pWorse := stratifiedAtLeast(strata, c)
	levelBeyond, levelWorse := st.level(), st.fixedLevel()
	v.Confidence = 1 - max(pBeyond, pWorse)
	switch {
	case !t.Fail.Crosses(v.Value, line):
		v.Status = Pass
		v.Reason = fmt.Sprintf("%s: within the %s line", seen, format(line))
	case pBeyond <= levelBeyond && pWorse <= levelWorse:
		v.Status = Fail
		v.Reason = fmt.Sprintf("%s: the new pods %s %s and worse than the old ones (%s sure; compared side by side)",
			seen, t.Fail.Op, format(line), sure(v.Confidence))
	case pWorse > levelWorse:
		v.Status = Warn
		v.Reason = fmt.Sprintf("%s: the new pods %s %s, but not significantly worse than the old ones yet (%s)",
			seen, t.Fail.Op, format(line), shortOfLevel(pWorse, levelWorse))
	default:
		v.Status = Warn
		v.Reason = fmt.Sprintf("%s: the new pods %s %s, but too few requests to be sure yet (%s)",
			seen, t.Fail.Op, format(line), shortOfLevel(pBeyond, levelBeyond))
	}
	if both {
		v.Reason += fmt.Sprintf("; the old pods are beyond the %s line too, a shared cause: the new ones are blamed only if worse by more than %g%%",
			format(t.Fail.Value), t.Tolerance*100)
	}
	return v
}

func shortOfLevel(p, level float64) string {
	return fmt.Sprintf("%s sure, %s needed", sure(1-p), sure(1-level))
}

// MaxStrata is how many stretches of time a comparison keeps: enough to
// follow a rollout's shifting traffic, few enough to stay cheap.
const MaxStrata = 32

// MergeStrata keeps at most n strata by merging, one pair at a time, the
// neighbours whose traffic was split most alike between the sides: within
// a merged stretch a change that hits both sides then counts for each
// side in proportion to its traffic, as it should. It reuses the storage
// of strata.
func MergeStrata(strata []Stratum, n int) []Stratum {
	n = max(n, 1)
	split := func(s Stratum) float64 {
		if !(s.New.Total+s.Old.Total > 0) {
			return 0
		}
		return s.New.Total / (s.New.Total + s.Old.Total)
	}
	for len(strata) > n {
		best, gap := 0, math.Inf(1)
		for i := 0; i+1 < len(strata); i++ {
			if d := math.Abs(split(strata[i]) - split(strata[i+1])); d < gap {
				best, gap = i, d
			}
		}
		a, b := strata[best], strata[best+1]
		strata[best] = Stratum{
			New: Counts{Bad: a.New.bad() + b.New.bad(), Total: a.New.Total + b.New.Total},
			Old: Counts{Bad: a.Old.bad() + b.Old.bad(), Total: a.Old.Total + b.Old.Total},
		}
		strata = append(strata[:best+1], strata[best+2:]...)
	}
	return strata
}

// MergeSlices is MergeStrata for histograms measured on each side over
// the same stretches of time.
func MergeSlices(newSlices, oldSlices []Histogram, n int) ([]Histogram, []Histogram) {
	n = max(n, 1)
	split := func(i int) float64 {
		a, b := newSlices[i].Count(), oldSlices[i].Count()
		if !(a+b > 0) {
			return 0
		}
		return a / (a + b)
	}
	for len(newSlices) > n && len(newSlices) == len(oldSlices) {
		best, gap := 0, math.Inf(1)
		for i := 0; i+1 < len(newSlices); i++ {
			if d := math.Abs(split(i) - split(i+1)); d < gap {
				best, gap = i, d
			}
		}
		newSlices[best] = SumHistograms(newSlices[best], newSlices[best+1])
		oldSlices[best] = SumHistograms(oldSlices[best], oldSlices[best+1])
		newSlices = append(newSlices[:best+1], newSlices[best+2:]...)
		oldSlices = append(oldSlices[:best+1], oldSlices[best+2:]...)
	}
	return newSlices, oldSlices
}

func sumStrata(strata []Stratum) (newC, oldC Counts) {
	for _, s := range strata {
		newC.Bad += s.New.bad()
		newC.Total += s.New.Total
		oldC.Bad += s.Old.bad()
		oldC.Total += s.Old.Total
	}
	return newC, oldC
}

func finite(c Counts) bool {
	return !math.IsInf(c.Total, 0) && !math.IsNaN(c.Total) && !math.IsInf(c.Bad, 0)
}

// maxExactEvents bounds the exact convolution (its cost grows with the
// square of the bad events); beyond it the p-value is Chernoff's bound,
// which is never below the exact one: a test that may need a few more
// events, never one that fails more often than it should.
const maxExactEvents = 3000

// stratifiedAtLeast is the p-value of the new side's bad events, summed
// over the strata, under "in every stratum the new rate is c times the
// old": given a stratum's m bad events, the new side's count is
// Binomial(m, c·n/(o+c·n)) with n and o the stratum's totals, and the sum
// is their convolution. Counts are made whole by rounding each side's
// running total, so that fractions (extrapolated counts) add up to no more
// than one event overall; a stratum where a side counted nothing says
// nothing and is left out.
func stratifiedAtLeast(strata []Stratum, c float64) float64 {
	type part struct {
		m int
		p float64
	}
	var parts []part
	observed, events := 0, 0
	var cumNew, cumOld float64
	var roundedNew, roundedOld int
	for _, s := range strata {
		if !finite(s.New) || !finite(s.Old) {
			continue
		}
		cumNew += s.New.bad()
		cumOld += s.Old.bad()
		b, a := int(math.Round(cumNew))-roundedNew, int(math.Round(cumOld))-roundedOld
		roundedNew, roundedOld = roundedNew+b, roundedOld+a
		if !(s.New.Total > 0) || !(s.Old.Total > 0) || a+b == 0 {
			continue
		}
		parts = append(parts, part{m: a + b, p: c * s.New.Total / (s.Old.Total + c*s.New.Total)})
		observed += b
		events += a + b
	}
	if observed == 0 {
		return 1
	}
	if events > maxExactEvents {
		return chernoffAtLeast(float64(observed), func(theta float64) float64 {
			// The log of the sum's moment generating function at theta.
			sum := 0.0
			for _, pt := range parts {
				sum += float64(pt.m) * math.Log1p(pt.p*math.Expm1(theta))
			}
			return sum
		})
	}
	dist := []float64{1}
	for _, pt := range parts {
		pmf := binomialPMFs(pt.m, pt.p)
		next := make([]float64, len(dist)+pt.m)
		for i, a := range dist {
			if a == 0 {
				continue
			}
			for k, b := range pmf {
				next[i+k] += a * b
			}
		}
		dist = next
	}
	tail := 0.0
	for k := observed; k < len(dist); k++ {
		tail += dist[k]
	}
	return min(tail, 1)
}

// chernoffAtLeast bounds P(S ≥ s) by min over θ ≥ 0 of exp(logMGF(θ) − θs),
// the minimum found by golden-section search (the exponent is convex).
func chernoffAtLeast(s float64, logMGF func(theta float64) float64) float64 {
	f := func(theta float64) float64 { return logMGF(theta) - theta*s }
	lo, hi := 0.0, 1.0
	for f(hi) < f(hi/2) && hi < 1e3 {
		hi *= 2
	}
	const phi = 0.6180339887498949
	a, b := lo+(1-phi)*(hi-lo), lo+phi*(hi-lo)
	fa, fb := f(a), f(b)
	for range 100 {
		if fa < fb {
			hi, b, fb = b, a, fa
			a = lo + (1-phi)*(hi-lo)
			fa = f(a)
		} else {
			lo, a, fa = a, b, fb
			b = lo + phi*(hi-lo)
			fb = f(b)
		}
	}
	return min(math.Exp(min(fa, fb, 0)), 1)
}

// binomialPMFs is P(X = k) for k = 0..m, X ~ Binomial(m, p).
func binomialPMFs(m int, p float64) []float64 {
	pmf := make([]float64, m+1)
	switch {
	case p <= 0:
		pmf[0] = 1
		return pmf
	case p >= 1:
		pmf[m] = 1
		return pmf
	}
	lgm, _ := math.Lgamma(float64(m + 1))
	lp, lq := math.Log(p), math.Log1p(-p)
	for k := range pmf {
		lk, _ := math.Lgamma(float64(k + 1))
		lmk, _ := math.Lgamma(float64(m - k + 1))
		pmf[k] = math.Exp(lgm - lk - lmk + float64(k)*lp + float64(m-k)*lq)
	}
	return pmf
}
