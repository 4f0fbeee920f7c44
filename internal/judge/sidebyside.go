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
// at the check's confidence made SideBySideStrictness times stricter:
//
//   - the new pods are beyond the line: for an absolute rule, their share
//     is shown beyond it by the check's own test; for a relative rule,
//     beyond its floor if it has one;
//   - the new pods are significantly worse than the old ones, by more than
//     the tolerance or, for a relative rule, by more than its factor,
//     whichever is larger: within each stratum, of the bad events of the
//     stretch, under "the new rate is c times the old" the new side's
//     share is binomial; the evidence against that is the mixture
//     likelihood ratio over the strata (stratifiedMixture).
//
// For a sequential check both tests are valid at every look; for one over
// a sliding window (one stratum) they are exact, spent over the looks.
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
	v.Value, v.Samples, v.Beyond = newC.bad()/newC.Total, newC.Total, newC.bad()
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
	return compareSides(v, strata, line, pBeyond, t.factor(), both, t.Fail.Value, seen, pct, t), old
}

// SideBySideQuantile is SideBySide for a latency quantile, measured as
// histograms over the same stretches of time: the line is drawn from the
// pre-deploy baseline (base; the old pods' quantile when it has too few
// observations), so that it holds still from look to look, and the new
// pods fail when more than 1-q of their requests are shown slower than it
// and their share of slower requests is significantly larger than the old
// pods' (by more than the tolerance): a slowdown both sides share is not
// the release's.
func SideBySideQuantile(newSlices, oldSlices []Histogram, base Histogram, q, minCount float64, t Thresholds) (v Verdict, old float64) {
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
	from := old
	if base.Count() >= minCount {
		from = base.Quantile(q)
	}
	line, ok, _ := t.failLine(from)
	if !ok {
		v.Status, v.Reason = NoData, "no fail line can be drawn"
		return v, old
	}
	both := t.Fail.Crosses(old, line)
	strata := make([]Stratum, 0, len(newSlices))
	for i := range min(len(newSlices), len(oldSlices)) {
		strata = append(strata, Stratum{New: newSlices[i].Beyond(line), Old: oldSlices[i].Beyond(line)})
	}
	newC, oldC := newH.Beyond(line), oldH.Beyond(line)
	v.Beyond = newC.Bad
	pBeyond := t.sideTest().pAbove(newC.Bad, n, 1-q)
	seen := fmt.Sprintf("new pods p%s %s (%.0f of %.0f requests slower than %s), old pods %s (%.0f of %.0f) over the same time",
		quantileName(q), secs(v.Value), newC.Bad, n, secs(line), secs(old), oldC.Bad, nOld)
	return compareSides(v, strata, line, pBeyond, 1+t.Tolerance, both, line, seen, secs, t), old
}

// sideTest is the thresholds the side-by-side tests use: the check's
// confidence made stricter, and spent over the looks even for a check
// judged look by look (whose failure limit does not apply here).
func (t Thresholds) sideTest() Thresholds {
	t = t.stricter(SideBySideStrictness)
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
// c times the old pods' rate, stratum by stratum. both says the old pods
// are beyond bothLine too.
func compareSides(v Verdict, strata []Stratum, line, pBeyond, c float64, both bool, bothLine float64, seen string, format func(float64) string, t Thresholds) Verdict {
	st := t.sideTest()
	v.Line = line
	pWorse, levelWorse := pWorseThan(strata, c, st)
	levelBeyond := st.level()
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
			format(bothLine), t.Tolerance*100)
	}
	return v
}

func shortOfLevel(p, level float64) string {
	return fmt.Sprintf("%s sure, %s needed", sure(1-p), sure(1-level))
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

// pWorseThan is the p-value of "the new side's rate is at most c times
// the old side's", and the level it must reach at this look. Counts that
// accumulate (a sequential check's) are judged by a mixture likelihood
// ratio over the strata, valid at every look; a sliding window, one
// stretch, by the exact conditional test, its level spent over the looks.
func pWorseThan(strata []Stratum, c float64, st Thresholds) (p, level float64) {
	if st.Test == Sequential {
		return anytimeP(stratifiedMixture(strata, c)), st.level()
	}
	newC, oldC := sumStrata(strata)
	return worseThanP(newC.bad(), newC.Total, oldC.bad(), oldC.Total, c), st.fixedLevel()
}

// stratifiedMixture is the evidence that the new side's rate is more than
// c times the old side's, stratum by stratum. Given a stratum's m bad
// events and its totals n (new) and o (old), under "the new rate is c
// times the old" each bad event is the new side's with chance
// p = c·n/(o+c·n); under an effect ψ the odds of that are ψ times higher.
// The likelihood ratio of the strata seen so far, mixed over the
// sequential test's alternatives, has expectation at most 1 under any new
// rate up to c times the old, at every look however many: the check fails
// when it reaches 1/α (Ville's inequality), with no confidence spent
// over the looks. A stratum where a side counted nothing says nothing.
func stratifiedMixture(strata []Stratum, c float64) float64 {
	llr := make([]float64, len(alternatives))
	for _, s := range strata {
		if !(s.New.Total > 0) || !(s.Old.Total > 0) || !finite(s.New) || !finite(s.Old) {
			continue
		}
		b, a := s.New.bad(), s.Old.bad()
		p := c * s.New.Total / (s.Old.Total + c*s.New.Total)
		if a+b == 0 || p >= 1 {
			continue
		}
		// Each bad event is the new side's or the old side's: a share of
		// them, tested against p as the sequential test tests a share.
		addBinomialLLRs(llr, b, a, p, true)
	}
	return meanExp(llr)
}
