package judge

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestSideBySide(t *testing.T) {
	relative := errorRateThresholds()
	relative.Fail = MustParseRule("> 2x baseline")
	cases := []struct {
		name     string
		th       Thresholds
		look     int
		newC     Counts
		oldC     Counts
		want     Status
		wantLine float64
		reason   string
	}{
		{"errors on the new pods only fail", errorRateThresholds(), 1,
			Counts{Bad: 20, Total: 400}, Counts{Bad: 0, Total: 800}, Fail, 0.01, "compared side by side"},
		{"errors on both sides are not the release's", errorRateThresholds(), 1,
			Counts{Bad: 20, Total: 400}, Counts{Bad: 40, Total: 800}, Pass, 0.0625, "beyond the 1% line too, a shared cause"},
		{"somewhat more errors than a failing old version", errorRateThresholds(), 1,
			Counts{Bad: 30, Total: 400}, Counts{Bad: 40, Total: 800}, Warn, 0.0625, "not significantly worse than the old ones yet"},
		{"worse but under the line passes", errorRateThresholds(), 1,
			Counts{Bad: 3, Total: 400}, Counts{Bad: 0, Total: 800}, Pass, 0.01, "within the 1% line"},
		{"too few requests on the new pods", errorRateThresholds(), 1,
			Counts{Bad: 5, Total: 10}, Counts{Bad: 0, Total: 800}, NoData, math.NaN(), "too little traffic"},
		{"no old pods counted", errorRateThresholds(), 1,
			Counts{Bad: 20, Total: 400}, Counts{}, NoData, math.NaN(), "0 on the old"},
		{"a relative rule compares with the old pods", relative, 1,
			Counts{Bad: 120, Total: 2000}, Counts{Bad: 40, Total: 4000}, Fail, 0.02, "worse than the old ones"},
		{"a relative rule needs more than its factor", relative, 1,
			Counts{Bad: 60, Total: 2000}, Counts{Bad: 40, Total: 4000}, Warn, 0.02, "not significantly worse"},
		{"an absolute line needs the new pods shown beyond it", errorRateThresholds(), 1,
			Counts{Bad: 3, Total: 150}, Counts{Bad: 0, Total: 3000}, Warn, 0.01, "too few requests to be sure"},
		{"a relative rule, too little evidence", relative, 1,
			Counts{Bad: 12, Total: 400}, Counts{Bad: 8, Total: 800}, Warn, 0.02, "not significantly worse"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			th := c.th
			th.Test, th.Look = Sequential, c.look
			v, old := SideBySide([]Stratum{{New: c.newC, Old: c.oldC}}, 100, th)
			if v.Status != c.want || !strings.Contains(v.Reason, c.reason) {
				t.Fatalf("%s (%s), want %s containing %q", v.Status, v.Reason, c.want, c.reason)
			}
			if !(math.IsNaN(c.wantLine) && math.IsNaN(v.Line)) && math.Abs(v.Line-c.wantLine) > 1e-12 {
				t.Errorf("line %v, want %v", v.Line, c.wantLine)
			}
			if c.oldC.Total > 0 && old != c.oldC.Bad/c.oldC.Total {
				t.Errorf("old %v", old)
			}
			if !math.IsNaN(v.Baseline) {
				t.Errorf("baseline %v: the old pods are not the pre-deploy baseline", v.Baseline)
			}
		})
	}
}

// TestSideBySideSpendsItsConfidenceOverLooks: the two-rate test's level at
// the k-th look is α'·6/(π²k²) with α' a tenth of the check's α, computed
// directly here (a relative rule without a floor, so that only the
// two-rate test decides).
func TestSideBySideSpendsItsConfidenceOverLooks(t *testing.T) {
	th := errorRateThresholds()
	th.Tolerance, th.Fail = 0, MustParseRule("> 1x baseline")
	strata := []Stratum{{New: Counts{Bad: 9, Total: 300}, Old: Counts{Bad: 1, Total: 600}}}
	// Of the 10 errors, 9 on the new side, which holds a third of the
	// requests: P(X ≥ 9 | 10, 1/3) = 10·(1/3)^9·(2/3) + (1/3)^10.
	p := 10*math.Pow(1.0/3, 9)*(2.0/3) + math.Pow(1.0/3, 10)
	for _, test := range []Test{Sequential, Spent, PerLook} {
		for _, look := range []int{1, 2, 10, 400} {
			th.Test, th.Look = test, look
			v, _ := SideBySide(strata, 100, th)
			level := 0.001 * 6 / (math.Pi * math.Pi * float64(look*look))
			want := Warn
			if p <= level {
				want = Fail
			}
			if v.Status != want {
				t.Errorf("%s test, look %d: %s, want %s (p %.3g, level %.3g): %s", test, look, v.Status, want, p, level, v.Reason)
			}
			if math.Abs(v.Confidence-(1-p)) > 1e-9 {
				t.Errorf("look %d: confidence %v, want %v", look, v.Confidence, 1-p)
			}
		}
	}
}

// TestStratifiedAtLeast checks the stratified two-rate test against
// direct computation: one stratum is the plain conditional binomial test;
// two small strata are summed by enumeration.
func TestStratifiedAtLeast(t *testing.T) {
	one := []Stratum{{New: Counts{Bad: 7, Total: 200}, Old: Counts{Bad: 3, Total: 600}}}
	if got, want := stratifiedAtLeast(one, 1.25), binomialAtLeast(7, 10, 1.25*200/(600+1.25*200)); math.Abs(got-want) > 1e-12 {
		t.Errorf("one stratum: %v, want %v", got, want)
	}
	// Stratum 1: 3 bad events, new share p1; stratum 2: 2, p2. P(X1+X2 ≥ 4).
	two := []Stratum{
		{New: Counts{Bad: 2, Total: 100}, Old: Counts{Bad: 1, Total: 300}},
		{New: Counts{Bad: 2, Total: 300}, Old: Counts{Bad: 0, Total: 100}},
	}
	p1, p2 := 100.0/400, 300.0/400
	pmf := func(m, k int, p float64) float64 {
		return float64(binom(m, k)) * math.Pow(p, float64(k)) * math.Pow(1-p, float64(m-k))
	}
	want := 0.0
	for k1 := 0; k1 <= 3; k1++ {
		for k2 := 0; k2 <= 2; k2++ {
			if k1+k2 >= 4 {
				want += pmf(3, k1, p1) * pmf(2, k2, p2)
			}
		}
	}
	if got := stratifiedAtLeast(two, 1); math.Abs(got-want) > 1e-12 {
		t.Errorf("two strata: %v, want %v", got, want)
	}
	// Up to maxExactEvents the sum is exact; beyond, Chernoff's bound is
	// never below the exact p-value, and within a small factor of it.
	exact := stratifiedAtLeast([]Stratum{{New: Counts{Bad: 800, Total: 20000}, Old: Counts{Bad: 1400, Total: 40000}}}, 1)
	if direct := binomialAtLeast(800, 2200, 20000.0/60000); math.Abs(exact-direct) > 1e-9 {
		t.Errorf("exact %v, direct %v", exact, direct)
	}
	for _, c := range []struct{ bad, events, newShare float64 }{
		{1250, 3250, 1.0 / 3}, {215, 3200, 0.05}, {400, 4000, 0.1}, {120, 3500, 0.02},
	} {
		n := 100000.0
		bound := stratifiedAtLeast([]Stratum{{
			New: Counts{Bad: c.bad, Total: n * c.newShare},
			Old: Counts{Bad: c.events - c.bad, Total: n * (1 - c.newShare)},
		}}, 1)
		direct := binomialAtLeast(c.bad, c.events, c.newShare)
		if bound < direct*(1-1e-9) || bound > 100*direct+1e-12 {
			t.Errorf("%.0f of %.0f at %.2f: bound %.3g, exact %.3g: want at or above it, within 100x", c.bad, c.events, c.newShare, bound, direct)
		}
	}
	// Fractions add up: 32 stretches of half an error on each side are 16
	// errors on each side, not 32 against none.
	var halves []Stratum
	for range 32 {
		halves = append(halves, Stratum{New: Counts{Bad: 0.5, Total: 100}, Old: Counts{Bad: 0.49, Total: 100}})
	}
	if p := stratifiedAtLeast(halves, 1); p < 0.2 {
		t.Errorf("half-errors: p %.3g, want no evidence", p)
	}
}

func binom(n, k int) int {
	r := 1
	for i := 1; i <= k; i++ {
		r = r * (n - k + i) / i
	}
	return r
}

// TestSideBySideRarelyFailsAHealthyRollout: old and new pods with the same
// error share, looked at every second of a 2-minute rollout while the new
// pods' share of the traffic grows: at most 1% of rollouts may fail over
// all their looks. The shares are just under the line, at twice it on
// both sides, or rise from 0.2% to 5% on both sides halfway through (a
// dependency that fails mid-rollout, which the new pods' running total
// feels more, since they take more of the later traffic). Counted without
// strata (the whole rollout as one stretch), the same outage fails many
// rollouts: the simulation can tell.
func TestSideBySideRarelyFailsAHealthyRollout(t *testing.T) {
	const watches, looks, rps = 1000, 120, 50.0
	simulate := func(share func(look int, isNew bool) float64, pooled bool) float64 {
		rng := rand.New(rand.NewPCG(7, 11))
		th := errorRateThresholds()
		th.Tolerance, th.Test = 0, Sequential
		failed := 0
		for range watches {
			var strata []Stratum
			for k := 1; k <= looks; k++ {
				newShare := float64(k) / looks // the rollout moves traffic over
				var s Stratum
				for range int(rps) {
					c, isNew := &s.Old, rng.Float64() < newShare
					if isNew {
						c = &s.New
					}
					c.Total++
					if rng.Float64() < share(k, isNew) {
						c.Bad++
					}
				}
				strata = append(strata, s)
				if pooled {
					strata = MergeStrata(strata, 1)
				} else {
					strata = MergeStrata(strata, MaxStrata)
				}
				th.Look = k
				if v, _ := SideBySide(strata, 20, th); v.Status == Fail {
					failed++
					break
				}
			}
		}
		return float64(failed) / watches
	}
	outage := func(k int, _ bool) float64 {
		if k > looks/2 {
			return 0.05
		}
		return 0.002
	}
	cases := []struct {
		name  string
		share func(int, bool) float64
	}{
		{"0.9% on both sides", func(int, bool) float64 { return 0.009 }},
		{"2% on both sides", func(int, bool) float64 { return 0.02 }},
		{"an outage on both sides halfway", outage},
	}
	for _, c := range cases {
		rate := simulate(c.share, false)
		t.Logf("%s: %.2f%% of healthy rollouts failed", c.name, 100*rate)
		if rate > 0.01 {
			t.Errorf("%s: %.2f%% of healthy rollouts failed, want at most 1%%", c.name, 100*rate)
		}
	}
	bad := func(_ int, isNew bool) float64 {
		if isNew {
			return 0.05
		}
		return 0.001
	}
	if caught := simulate(bad, false); caught < 0.99 {
		t.Errorf("5%% errors on the new pods, 0.1%% on the old: caught in %.1f%% of rollouts, want 99%%", 100*caught)
	}
	rate := simulate(outage, true)
	t.Logf("the outage counted as one stretch: %.2f%% failed", 100*rate)
	if rate <= 0.01 {
		t.Errorf("counted as one stretch, the outage failed only %.2f%% of healthy rollouts: the simulation cannot tell", 100*rate)
	}
}

func TestSideBySideQuantile(t *testing.T) {
	th := Thresholds{Warn: MustParseRule("> 500ms"), Fail: MustParseRule("> 2x baseline"), Floor: 0.1, HasFloor: true,
		Tolerance: 0.25, Confidence: 0.99, Test: Sequential, Look: 1}
	// hist spreads n requests over the buckets by the shares given for
	// ≤50ms, ≤100ms, ≤250ms, ≤1s and beyond.
	hist := func(n float64, shares ...float64) Histogram {
		bounds := []float64{0.05, 0.1, 0.25, 1, math.Inf(1)}
		var b []Bucket
		cum := 0.0
		for i, ub := range bounds {
			cum += shares[i] * n
			b = append(b, Bucket{UpperBound: ub, Count: cum})
		}
		return NewHistogram(b)
	}
	fast := func(n float64) Histogram { return hist(n, 0.9, 0.095, 0.005, 0, 0) }
	slow := func(n float64) Histogram { return hist(n, 0.2, 0.3, 0.3, 0.2, 0) }
	cases := []struct {
		name     string
		newH     Histogram
		oldH     Histogram
		want     Status
		wantLine float64
	}{
		{"slow new pods fail", slow(400), fast(800), Fail, 2 * fast(800).Quantile(0.99)},
		{"slow on both sides is not the release's", slow(400), slow(800), Pass, 2 * slow(800).Quantile(0.99)},
		{"fast on both sides passes", fast(400), fast(800), Pass, 2 * fast(800).Quantile(0.99)},
		{"the floor holds for very fast old pods", hist(400, 0.5, 0.4, 0.1, 0, 0), hist(800, 1, 0, 0, 0, 0), Fail, 0.1},
		{"too few old requests", slow(400), fast(10), NoData, math.NaN()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, old := SideBySideQuantile([]Histogram{c.newH}, []Histogram{c.oldH}, 0.99, 100, th)
			if v.Status != c.want {
				t.Fatalf("%s (%s), want %s", v.Status, v.Reason, c.want)
			}
			if !(math.IsNaN(c.wantLine) && math.IsNaN(v.Line)) && math.Abs(v.Line-c.wantLine) > 1e-9 {
				t.Errorf("line %v, want %v (%s)", v.Line, c.wantLine, v.Reason)
			}
			if c.oldH.Count() >= 100 && old != c.oldH.Quantile(0.99) {
				t.Errorf("old %v, want the old pods' p99 %v", old, c.oldH.Quantile(0.99))
			}
			if c.want == Fail && !strings.Contains(v.Reason, "requests slower than "+secs(v.Line)) {
				t.Errorf("reason %q does not say how many requests were slower than the line", v.Reason)
			}
		})
	}
}
