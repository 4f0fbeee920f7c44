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

// SideBySide judges the new pods' error share against the old pods',
// counted over the same time. It fails when both hold:
//
//   - the new pods are beyond the fail line, drawn with the old pods'
//     share as the baseline (so a relative rule compares with them, and an
//     old version already beyond an absolute line raises it by the
//     tolerance);
//   - the new pods are significantly worse than the old ones by more than
//     the tolerance: the exact conditional test of two rates (of all bad
//     events on both sides, under "the new rate is (1+tolerance) times the
//     old" the new side's share is binomial), at this look's level, the
//     confidence spent over the looks.
//
// A share beyond the line on both sides is not the release's doing, and
// one that is worse but under the line is not worth a rollback. The verdict's Baseline is NaN: the old pods' share is in the
// reason and returned as old.
func SideBySide(newC, oldC Counts, minTotal float64, t Thresholds) (v Verdict, old float64) {
	v = none()
	old = oldC.Ratio()
	if math.IsNaN(newC.Total) || newC.Total <= 0 {
		v.Status, v.Reason = NoData, "no requests counted on the new pods"
		return v, old
	}
	bad := newC.bad()
	v.Value, v.Samples = bad/newC.Total, newC.Total
	if newC.Total < minTotal || !(oldC.Total > 0) {
		v.Status = NoData
		v.Reason = fmt.Sprintf("too little traffic to compare side by side: %.0f requests on the new pods (need %.0f), %.0f on the old",
			newC.Total, minTotal, max(oldC.Total, 0))
		return v, old
	}
	if !t.Fail.Op.Upward() {
		v.Status, v.Reason = NoData, "only a rule against too many bad events is compared side by side"
		return v, old
	}
	line, ok, both := t.failLine(old)
	if !ok {
		v.Status, v.Reason = NoData, "no fail line can be drawn"
		return v, old
	}
	v.Line = line
	oldBad := oldC.bad()
	c := 1 + t.Tolerance
	shareNew := c * newC.Total / (oldC.Total + c*newC.Total)
	p := binomialAtLeast(bad, bad+oldBad, shareNew)
	v.Confidence = 1 - p
	seen := fmt.Sprintf("new pods %s of %.0f requests, old pods %s of %.0f over the same time",
		pct(v.Value), newC.Total, pct(old), oldC.Total)
	switch {
	case !t.Fail.Crosses(v.Value, line):
		v.Status = Pass
		v.Reason = fmt.Sprintf("%s: within the %s line", seen, pct(line))
	case p <= t.fixedLevel():
		v.Status = Fail
		v.Reason = fmt.Sprintf("%s: the new pods %s %s and worse than the old ones (%s sure; compared side by side)",
			seen, t.Fail.Op, pct(line), sure(v.Confidence))
	default:
		v.Status = Warn
		v.Reason = fmt.Sprintf("%s: the new pods %s %s, but not significantly worse than the old ones yet (%.2f%% sure, %s needed)",
			seen, t.Fail.Op, pct(line), math.Floor(10000*(1-p))/100, sure(1-t.fixedLevel()))
	}
	if both {
		v.Reason += fmt.Sprintf("; the old pods are beyond the %s line too, a shared cause: the new ones are blamed only if worse by more than %g%%",
			pct(t.Fail.Value), t.Tolerance*100)
	}
	return v, old
}
