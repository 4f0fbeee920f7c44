package judge

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMixtureMatchesDirectComputation: the mixture is the mean over the
// alternatives of the ratio of two binomial (or Poisson) probabilities,
// computed here the textbook way, from the probability mass functions.
func TestMixtureMatchesDirectComputation(t *testing.T) {
	for _, c := range []struct {
		bad, total int
		p0         float64
		upward     bool
	}{
		{0, 50, 0.01, true}, {3, 50, 0.01, true}, {12, 250, 0.01, true}, {40, 1000, 0.01, true},
		{30, 100, 0.05, true}, {1, 20, 0.3, true}, {990, 1000, 0.99, false}, {900, 1000, 0.99, false},
	} {
		var direct float64
		odds0 := c.p0 / (1 - c.p0)
		for _, r := range alternatives {
			odds := odds0 * r
			if !c.upward {
				odds = odds0 / r
			}
			p1 := odds / (1 + odds)
			direct += binomialPMF(c.bad, c.total, p1) / binomialPMF(c.bad, c.total, c.p0)
		}
		direct /= float64(len(alternatives))
		got := binomialMixture(float64(c.bad), float64(c.total), c.p0, c.upward)
		if math.Abs(got-direct) > 1e-9*math.Max(1, direct) {
			t.Errorf("binomial mixture %d of %d vs %g = %g, want %g", c.bad, c.total, c.p0, got, direct)
		}
	}
	poissonPMF := func(k int, mean float64) float64 {
		lk, _ := math.Lgamma(float64(k + 1))
		return math.Exp(float64(k)*math.Log(mean) - mean - lk)
	}
	for _, c := range []struct {
		count  int
		mean0  float64
		upward bool
	}{{0, 40, false}, {5, 40, false}, {40, 40, false}, {20, 5, true}, {3, 5, true}} {
		var direct float64
		for _, r := range alternatives {
			if !c.upward {
				r = 1 / r
			}
			direct += poissonPMF(c.count, c.mean0*r) / poissonPMF(c.count, c.mean0)
		}
		direct /= float64(len(alternatives))
		if got := poissonMixture(float64(c.count), c.mean0, c.upward); math.Abs(got-direct) > 1e-9*math.Max(1, direct) {
			t.Errorf("poisson mixture %d vs mean %g = %g, want %g", c.count, c.mean0, got, direct)
		}
	}
}

// TestMixtureIsAFairBetAtTheLine: what makes the test valid at every
// look. At the line, the mixture's expectation over every possible count
// is exactly 1 (a martingale); within the line it is less.
func TestMixtureIsAFairBetAtTheLine(t *testing.T) {
	for _, n := range []int{1, 20, 300} {
		for _, p0 := range []float64{0.001, 0.01, 0.2} {
			at, within := 0.0, 0.0
			for x := 0; x <= n; x++ {
				lr := binomialMixture(float64(x), float64(n), p0, true)
				at += binomialPMF(x, n, p0) * lr
				within += binomialPMF(x, n, p0/2) * lr
			}
			if math.Abs(at-1) > 1e-9 {
				t.Errorf("n=%d p0=%g: E[Λ] at the line = %g, want 1", n, p0, at)
			}
			if within > 1 {
				t.Errorf("n=%d p0=%g: E[Λ] within the line = %g, want <= 1", n, p0, within)
			}
		}
	}
}

// TestSequentialBoundary pins where one look of a sequential check fails:
// the fewest errors among n requests that prove more than 1% at 99%,
// found by counting up, with the fixed test's boundary for comparison
// (the sequential one asks for more: that is the price of looking often).
func TestSequentialBoundary(t *testing.T) {
	th := errorRateThresholds()
	th.Test = Sequential
	fixed := errorRateThresholds()
	for _, c := range []struct {
		total            float64
		wantSeq, wantFix float64
	}{
		{total: 50, wantSeq: 5, wantFix: 4},
		{total: 150, wantSeq: 8, wantFix: 6},
		{total: 500, wantSeq: 15, wantFix: 12},
		{total: 2000, wantSeq: 38, wantFix: 32},
	} {
		first := func(th Thresholds) float64 {
			for bad := 0.0; bad <= c.total; bad++ {
				if Ratio(Counts{Bad: bad, Total: c.total}, Counts{}, 20, th).Status == Fail {
					return bad
				}
			}
			return math.NaN()
		}
		if got := first(th); got != c.wantSeq {
			t.Errorf("sequential: %g requests fail from %g errors, want %g", c.total, got, c.wantSeq)
		}
		if got := first(fixed); got != c.wantFix {
			t.Errorf("one look: %g requests fail from %g errors, want %g", c.total, got, c.wantFix)
		}
		// Direct: at the boundary the mixture crosses 1/alpha.
		lr := binomialMixture(c.wantSeq, c.total, 0.01, true)
		below := binomialMixture(c.wantSeq-1, c.total, 0.01, true)
		if !(lr >= 100 && below < 100) {
			t.Errorf("%g requests: Λ(%g) = %g, Λ(%g) = %g; want the boundary at 100", c.total, c.wantSeq, lr, c.wantSeq-1, below)
		}
	}
}

func TestSpentAlphaSumsToAlpha(t *testing.T) {
	var sum float64
	for k := 1; k <= 1_000_000; k++ {
		sum += spentAlpha(0.01, k)
	}
	if sum > 0.01 || sum < 0.00999 {
		t.Errorf("alpha spent over a million looks = %g, want just under 0.01", sum)
	}
}

// TestSequentialStreamAtTheLine: requests arriving one by one at exactly
// the line's error rate, looked at after every request for 5,000
// requests: the sequential test rejects in at most 1% of the streams,
// where the fixed test looked at that often rejects in most of them.
func TestSequentialStreamAtTheLine(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	rng := rand.New(rand.NewPCG(7, 0))
	const streams, length, p0 = 2000, 5000, 0.01
	seq, fixed := 0, 0
	for range streams {
		var bad float64
		seqDone, fixedDone := false, false
		for n := 1.0; n <= length && !(seqDone && fixedDone); n++ {
			if rng.Float64() < p0 {
				bad++
			}
			if !seqDone && binomialMixture(bad, n, p0, true) >= 100 {
				seq++
				seqDone = true
			}
			if !fixedDone && binomialAtLeast(bad, n, p0) <= 0.01 {
				fixed++
				fixedDone = true
			}
		}
	}
	t.Logf("streams at the line rejected: sequential %d of %d, fixed test at every look %d", seq, streams, fixed)
	if float64(seq) > 0.01*streams {
		t.Errorf("sequential test rejected %d of %d streams at the line, want <= 1%%", seq, streams)
	}
	if float64(fixed) < 0.05*streams {
		t.Errorf("the fixed test at every look rejected only %d of %d: the simulation cannot tell a valid test from an invalid one", fixed, streams)
	}
}
