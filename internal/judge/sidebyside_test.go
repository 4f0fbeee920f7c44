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
			Counts{Bad: 60, Total: 2000}, Counts{Bad: 40, Total: 4000}, Fail, 0.02, "worse than the old ones"},
		{"a relative rule, too little evidence", relative, 1,
			Counts{Bad: 12, Total: 400}, Counts{Bad: 8, Total: 800}, Warn, 0.02, "not significantly worse"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			th := c.th
			th.Test, th.Look = Sequential, c.look
			v, old := SideBySide(c.newC, c.oldC, 100, th)
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
// the k-th look is α·6/(π²k²), computed directly here.
func TestSideBySideSpendsItsConfidenceOverLooks(t *testing.T) {
	th := errorRateThresholds()
	th.Tolerance = 0
	newC, oldC := Counts{Bad: 9, Total: 300}, Counts{Bad: 1, Total: 600}
	// Of the 10 errors, 9 on the new side, which holds a third of the
	// requests: P(X ≥ 9 | 10, 1/3) = 10·(1/3)^9·(2/3) + (1/3)^10.
	p := 10*math.Pow(1.0/3, 9)*(2.0/3) + math.Pow(1.0/3, 10)
	for _, look := range []int{1, 10, 40, 400} {
		th.Test, th.Look = Sequential, look
		v, _ := SideBySide(newC, oldC, 100, th)
		level := 0.01 * 6 / (math.Pi * math.Pi * float64(look*look))
		want := Warn
		if p <= level {
			want = Fail
		}
		if v.Status != want {
			t.Errorf("look %d: %s, want %s (p %.3g, level %.3g): %s", look, v.Status, want, p, level, v.Reason)
		}
		if math.Abs(v.Confidence-(1-p)) > 1e-9 {
			t.Errorf("look %d: confidence %v, want %v", look, v.Confidence, 1-p)
		}
	}
}

// TestSideBySideRarelyFailsAHealthyRollout: old and new pods with the same
// error share just under the line, looked at every second of a 2-minute
// rollout while the new pods' share of the traffic grows: at most 1% of
// rollouts may fail over all their looks. With the level not spent over
// the looks (the plain 99% test at each), the same simulation fails more,
// so it can tell.
func TestSideBySideRarelyFailsAHealthyRollout(t *testing.T) {
	const watches, looks, rps = 2000, 120, 50.0
	simulate := func(th Thresholds, perLook bool, share float64) float64 {
		rng := rand.New(rand.NewPCG(7, 11))
		failed := 0
		for range watches {
			var newC, oldC Counts
			for k := 1; k <= looks; k++ {
				newShare := float64(k) / looks // the rollout moves traffic over
				for range int(rps) {
					c := &oldC
					if rng.Float64() < newShare {
						c = &newC
					}
					c.Total++
					if rng.Float64() < share {
						c.Bad++
					}
				}
				at := th
				at.Test, at.Look = Sequential, k
				if perLook {
					at.Test = PerLook
				}
				if v, _ := SideBySide(newC, oldC, 20, at); v.Status == Fail {
					failed++
					break
				}
			}
		}
		return float64(failed) / watches
	}
	th := errorRateThresholds()
	th.Tolerance = 0
	for _, share := range []float64{0.009, 0.02} {
		rate := simulate(th, false, share)
		t.Logf("%.1f%% errors on both sides: %.2f%% of healthy rollouts failed", 100*share, 100*rate)
		if rate > 0.01 {
			t.Errorf("%.1f%% errors on both sides: %.2f%% of healthy rollouts failed, want at most 1%%", 100*share, 100*rate)
		}
	}
	rate := simulate(th, true, 0.02)
	t.Logf("the plain 99%% test at every look: %.2f%% failed", 100*rate)
	if rate <= 0.01 {
		t.Errorf("the plain test at every look failed %.2f%% of healthy rollouts: the simulation cannot tell a weak boundary", 100*rate)
	}
}
