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
			Counts{Bad: 3, Total: 150}, Counts{Bad: 0, Total: 30000}, Warn, 0.01, "too few requests to be sure"},
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

// TestSideBySideLevels: with counts that accumulate (the sequential test)
// the comparison of the two rates is the mixture likelihood ratio, computed
// directly here, failing when it reaches 1/α' (α' a tenth of the check's
// α) at any look; over a sliding window it is the exact conditional test
// at α'·6/(π²k²) at the k-th look. A relative rule without a floor, so
// that only the comparison decides.
func TestSideBySideLevels(t *testing.T) {
	th := errorRateThresholds()
	th.Tolerance, th.Fail = 0, MustParseRule("> 1x baseline")
	// The new side holds a third of the requests.
	mixture := func(b, a float64) float64 {
		p, sum := 1.0/3, 0.0
		for _, psi := range alternatives {
			q := psi * p / (1 - p) / (1 + psi*p/(1-p))
			sum += math.Pow(q/p, b) * math.Pow((1-q)/(1-p), a)
		}
		return sum / float64(len(alternatives))
	}
	for _, c := range []struct{ b, a float64 }{{9, 1}, {12, 0}, {14, 2}} {
		strata := []Stratum{{New: Counts{Bad: c.b, Total: 300}, Old: Counts{Bad: c.a, Total: 600}}}
		lr := mixture(c.b, c.a)
		p := binomialAtLeast(c.b, c.a+c.b, 1.0/3)
		for _, look := range []int{1, 2, 10, 400} {
			th.Test, th.Look = Sequential, look
			v, _ := SideBySide(strata, 100, th)
			if want := lr >= 1000; (v.Status == Fail) != want {
				t.Errorf("%v/%v sequential, look %d: %s, want fail %v (Λ %.4g): %s", c.b, c.a, look, v.Status, want, lr, v.Reason)
			}
			level := 0.001 * 6 / (math.Pi * math.Pi * float64(look*look))
			for _, test := range []Test{Spent, PerLook} {
				th.Test = test
				v, _ := SideBySide(strata, 100, th)
				if want := p <= level; (v.Status == Fail) != want {
					t.Errorf("%v/%v %s, look %d: %s, want fail %v (p %.3g, level %.3g)", c.b, c.a, test, look, v.Status, want, p, level)
				}
			}
		}
	}
}

// TestStratifiedMixture: under "the new rate is c times the old" the
// mixture's expectation is exactly 1 (a martingale, which is what makes it
// valid at every look), and below that less; two strata multiply; halves
// of errors on both sides are no evidence.
func TestStratifiedMixture(t *testing.T) {
	const m = 12
	stratum := func(b float64) []Stratum {
		return []Stratum{{New: Counts{Bad: b, Total: 200}, Old: Counts{Bad: m - b, Total: 400}}}
	}
	for _, c := range []struct{ p, want float64 }{{1.0 / 3, 1}, {0.25, 0}} {
		e := 0.0
		for k := 0; k <= m; k++ {
			e += float64(binom(m, k)) * math.Pow(c.p, float64(k)) * math.Pow(1-c.p, float64(m-k)) * stratifiedMixture(stratum(float64(k)), 1)
		}
		if c.want == 1 && math.Abs(e-1) > 1e-9 || c.want == 0 && !(e < 1) {
			t.Errorf("true share %.3g: E[Λ] = %v", c.p, e)
		}
	}
	two := []Stratum{
		{New: Counts{Bad: 3, Total: 100}, Old: Counts{Bad: 1, Total: 300}},
		{New: Counts{Bad: 4, Total: 300}, Old: Counts{Bad: 0, Total: 100}},
	}
	want := 0.0
	for _, psi := range alternatives {
		lr := 1.0
		for _, s := range two {
			p := s.New.Total / (s.New.Total + s.Old.Total)
			q := psi * p / (1 - p) / (1 + psi*p/(1-p))
			lr *= math.Pow(q/p, s.New.Bad) * math.Pow((1-q)/(1-p), s.Old.Bad)
		}
		want += lr / float64(len(alternatives))
	}
	if got := stratifiedMixture(two, 1); math.Abs(got-want) > 1e-9*want {
		t.Errorf("two strata: %v, want %v", got, want)
	}
	var halves []Stratum
	for range 32 {
		halves = append(halves, Stratum{New: Counts{Bad: 0.5, Total: 100}, Old: Counts{Bad: 0.49, Total: 100}})
	}
	if lr := stratifiedMixture(halves, 1); lr > 5 {
		t.Errorf("half-errors on both sides: Λ %.3g, want no evidence", lr)
	}
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
				if pooled && len(strata) > 0 {
					p := &strata[0]
					p.New.Bad, p.New.Total = p.New.Bad+s.New.Bad, p.New.Total+s.New.Total
					p.Old.Bad, p.Old.Total = p.Old.Bad+s.Old.Bad, p.Old.Total+s.Old.Total
				} else {
					strata = append(strata, s)
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
	caught := simulate(bad, false)
	t.Logf("5%% errors on the new pods, 0.1%% on the old: caught in %.1f%% of rollouts", 100*caught)
	if caught < 0.99 {
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
		base     Histogram // the pre-deploy baseline; nil: the old pods draw the line
		want     Status
		wantLine float64
	}{
		{"slow new pods fail", slow(400), fast(800), nil, Fail, 2 * fast(800).Quantile(0.99)},
		{"slow on both sides is not the release's", slow(400), slow(800), nil, Pass, 2 * slow(800).Quantile(0.99)},
		{"fast on both sides passes", fast(400), fast(800), nil, Pass, 2 * fast(800).Quantile(0.99)},
		{"the floor holds for very fast old pods", hist(400, 0.5, 0.4, 0.1, 0, 0), hist(800, 1, 0, 0, 0, 0), nil, Fail, 0.1},
		{"too few old requests", slow(400), fast(10), nil, NoData, math.NaN()},
		{"the baseline draws the line", slow(400), fast(800), fast(5000), Fail, 2 * fast(5000).Quantile(0.99)},
		{"a slowdown both sides share is not the release's", slow(400), slow(800), fast(5000), Warn, 2 * fast(5000).Quantile(0.99)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, old := SideBySideQuantile([]Histogram{c.newH}, []Histogram{c.oldH}, c.base, 0.99, 100, th)
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

func binom(n, k int) int {
	r := 1
	for i := 1; i <= k; i++ {
		r = r * (n - k + i) / i
	}
	return r
}
