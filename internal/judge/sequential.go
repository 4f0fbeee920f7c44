package judge

import (
	"fmt"
	"math"
)

// A watch looks at a check many times: every scrape or interval of a
// five-minute monitor. A fixed 99% test repeated at every look fails a
// healthy release far more often than 1% of the time over the watch, so
// each look's test must know it is one of many. Test says how.
type Test int

const (
	// PerLook tests each look on its own at 1 - confidence; the check's
	// failure limit (several failing looks in a row) is what guards against
	// the many looks. This is what a user who sets failure_limit gets.
	PerLook Test = iota
	// Sequential is for data that accumulate from a fixed start (counts
	// since the warm-up ended): the evidence is a mixture likelihood ratio
	// Λ against the line, and the check fails when Λ ≥ 1/α. Under the line
	// Λ is a nonnegative supermartingale, so by Ville's inequality the chance
	// that it ever reaches 1/α, at any look of any watch however often it
	// looks, is at most α. One decisive look is enough.
	Sequential
	// Spent is for data over a sliding window (a request rate over the last
	// seconds), where looks do not accumulate: look k is tested at
	// α·6/(π²k²), and these sum to α over any number of looks.
	Spent
)

var testNames = map[Test]string{PerLook: "per_look", Sequential: "sequential", Spent: "spent"}

func (t Test) String() string { return testNames[t] }

// alternatives are the effects the sequential test mixes over, as odds
// ratios for a share of events and rate ratios for counts: from half as
// bad again as the line to thirty times it, with equal weights. The
// mixture pays log(6) for not knowing the effect in advance, and is close
// to the best single alternative for every effect in that range.
var alternatives = []float64{1.5, 2, 3, 5, 10, 30}

// binomialMixture is the likelihood ratio of bad events among total under
// a share beyond p0 (above it when upward, below it otherwise), mixed over
// alternatives, against a share of exactly p0. Under any share on the
// other side of p0 its expectation is at most 1.
func binomialMixture(bad, total, p0 float64, upward bool) float64 {
	good := total - bad
	switch {
	case upward && p0 <= 0, !upward && p0 >= 1:
		// Nothing can be on the other side of an impossible line: one
		// event that should not exist is proof.
		if upward && bad > 0 || !upward && good > 0 {
			return math.Inf(1)
		}
		return 1
	case upward && p0 >= 1, !upward && p0 <= 0:
		return 0 // nothing can be beyond it
	}
	llr := make([]float64, len(alternatives))
	addBinomialLLRs(llr, bad, good, p0, upward)
	return meanExp(llr)
}

// addBinomialLLRs adds to llr[j] the log likelihood ratio of bad and good
// events under the j-th alternative (the odds of p0 times, or divided by,
// alternatives[j]) against a share of exactly p0, for 0 < p0 < 1.
func addBinomialLLRs(llr []float64, bad, good, p0 float64, upward bool) {
	odds0 := p0 / (1 - p0)
	for j, r := range alternatives {
		odds := odds0 * r
		if !upward {
			odds = odds0 / r
		}
		p1 := odds / (1 + odds)
		llr[j] += bad*math.Log(p1/p0) + good*(math.Log1p(-p1)-math.Log1p(-p0))
	}
}

// meanExp is the mixture, with equal weights, of the likelihood ratios
// whose logs are llr.
func meanExp(llr []float64) float64 {
	var sum float64
	for _, l := range llr {
		sum += math.Exp(math.Min(l, 700))
	}
	return sum / float64(len(llr))
}

// poissonMixture is the same for a count of events against an expected
// mean0: the rate beyond the line is mean0·r (or mean0/r downward).
func poissonMixture(count, mean0 float64, upward bool) float64 {
	if mean0 <= 0 {
		if upward && count > 0 {
			return math.Inf(1)
		}
		if upward {
			return 1
		}
		return 0
	}
	var sum float64
	for _, r := range alternatives {
		if !upward {
			r = 1 / r
		}
		llr := count*math.Log(r) - mean0*(r-1)
		sum += math.Exp(math.Min(llr, 700))
	}
	return sum / float64(len(alternatives))
}

// anytimeP turns a mixture likelihood ratio into a p-value that is valid
// at every look: the chance of evidence this strong, ever, if the release
// were within the line.
func anytimeP(lr float64) float64 {
	if !(lr > 1) {
		return 1
	}
	return 1 / lr
}

// spentAlpha is the share of alpha the k-th look may spend (k from 1):
// α·6/(π²k²), which sums to α over all looks.
func spentAlpha(alpha float64, k int) float64 {
	k = max(k, 1)
	return alpha * 6 / (math.Pi * math.Pi * float64(k) * float64(k))
}

// AtLook returns the thresholds for the k-th look (from 1) at a check.
func (t Thresholds) AtLook(k int) Thresholds {
	t.Look = k
	return t
}

// level is the p-value at which this look fails: alpha, or for a sliding
// window the share of alpha this look may spend.
func (t Thresholds) level() float64 {
	if t.Test == Spent {
		return spentAlpha(t.alpha(), t.Look)
	}
	return t.alpha()
}

// fixedLevel is the level of a fixed-sample test (one that is not a
// mixture) made at this look: alpha on its own, spent over the looks when
// the watch is judged sequentially.
func (t Thresholds) fixedLevel() float64 {
	if t.Test == PerLook {
		return t.alpha()
	}
	return spentAlpha(t.alpha(), t.Look)
}

// shortOf says how far evidence with p-value p is from failing this look:
// for the sequential test, the likelihood ratio against the one needed
// ("evidence 3.2 to 1, 100 to 1 needed"); else the confidence against the
// confidence needed.
func (t Thresholds) shortOf(p float64) string {
	if t.Test == Sequential {
		return fmt.Sprintf("evidence %s to 1, %.0f to 1 needed", odds(1/p), 1/t.level())
	}
	return fmt.Sprintf("%.2f%% sure, %s needed", math.Floor(10000*(1-p))/100, sure(1-t.level()))
}

// odds renders a likelihood ratio.
func odds(lr float64) string {
	if !(lr > 1) {
		return "1"
	}
	return fmt.Sprintf("%.2g", lr)
}

// pBinomialBeyond is the p-value of "bad of total is beyond the share
// line": exact for one look, anytime-valid for a sequential check.
func (t Thresholds) pBinomialBeyond(bad, total, line float64) float64 {
	up := t.Fail.Op.Upward()
	if t.Test == Sequential {
		return anytimeP(binomialMixture(bad, total, line, up))
	}
	if up {
		return binomialAtLeast(bad, total, line)
	}
	return binomialAtMost(bad, total, line)
}

// pAbove is pBinomialBeyond for a share that must be shown above p0,
// whatever the rule's direction: requests slower than a latency line
// cross it upward however the rule is written.
func (t Thresholds) pAbove(bad, total, p0 float64) float64 {
	t.Fail.Op = OpGreater
	return t.pBinomialBeyond(bad, total, p0)
}

// pPoissonBeyond is the same for count events against an expected mean.
func (t Thresholds) pPoissonBeyond(count, mean float64) float64 {
	up := t.Fail.Op.Upward()
	if t.Test == Sequential {
		return anytimeP(poissonMixture(count, mean, up))
	}
	if up {
		return poissonAtLeast(count, mean)
	}
	return poissonAtMost(count, mean)
}
