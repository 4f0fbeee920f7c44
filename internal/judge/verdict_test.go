package judge

import (
	"math"
	"strings"
	"testing"
)

var nan = math.NaN()

func errorRateThresholds() Thresholds {
	return Thresholds{Warn: MustParseRule("> 0.1%"), Fail: MustParseRule("> 1%"), Tolerance: 0.25, Confidence: 0.99}
}

func TestRatio(t *testing.T) {
	cases := []struct {
		name       string
		obs, base  Counts
		minTotal   float64
		want       Status
		wantReason string
		before     bool
	}{
		{name: "no requests at all is no data, not zero", obs: Counts{Bad: nan, Total: nan}, want: NoData, wantReason: "no requests"},
		{name: "zero requests is no data", obs: Counts{Total: 0}, want: NoData},
		{name: "tiny traffic below the minimum is no data", obs: Counts{Bad: 5, Total: 5}, minTotal: 20, want: NoData, wantReason: "too little traffic"},
		{name: "clean traffic passes", obs: Counts{Bad: 0, Total: 2000}, want: Pass},
		{name: "missing error series with traffic means no errors", obs: Counts{Bad: nan, Total: 2000}, want: Pass},
		{name: "between the lines warns", obs: Counts{Bad: 10, Total: 2000}, want: Warn, wantReason: "warn line"},
		{name: "exactly at the fail line does not fail", obs: Counts{Bad: 20, Total: 2000}, want: Warn},
		{name: "5% of 250 requests fails", obs: Counts{Bad: 12.5, Total: 250}, want: Fail, wantReason: "sure"},
		{name: "2 errors in 40 requests at 1 req/s is noise", obs: Counts{Bad: 2, Total: 40}, minTotal: 20, want: Warn, wantReason: "not enough to be sure"},
		{name: "all of 30 requests failing is certain", obs: Counts{Bad: 30, Total: 30}, minTotal: 20, want: Fail},
		{name: "extrapolated bad above total is clamped", obs: Counts{Bad: 31, Total: 30}, minTotal: 20, want: Fail},
		{name: "already at 2% before an unchanged deploy warns", obs: Counts{Bad: 40, Total: 2000}, base: Counts{Bad: 120, Total: 6000}, want: Warn, wantReason: "breaching before", before: true},
		{name: "already at 2% and now 8% fails", obs: Counts{Bad: 160, Total: 2000}, base: Counts{Bad: 120, Total: 6000}, want: Fail, wantReason: "already 2%", before: true},
		{name: "a baseline below the line does not excuse a breach", obs: Counts{Bad: 100, Total: 2000}, base: Counts{Bad: 3, Total: 6000}, want: Fail},
		// A service always at 2% whose short baseline read 0.98%: the new
		// 3% of 456 is significant against 1% but not against the baseline.
		{name: "a short baseline near the line excuses what is not worse than it", obs: Counts{Bad: 13.7, Total: 456}, base: Counts{Bad: 6.5, Total: 665}, want: Warn, wantReason: "maybe beyond the line already"},
		{name: "a short baseline near the line does not excuse a real regression", obs: Counts{Bad: 45, Total: 456}, base: Counts{Bad: 6.5, Total: 665}, want: Fail},
		{name: "a short clean baseline excuses nothing", obs: Counts{Bad: 12.5, Total: 250}, base: Counts{Bad: 0, Total: 100}, want: Fail},
		{name: "a baseline below the minimum traffic neither raises the line nor excuses", obs: Counts{Bad: 50, Total: 500}, base: Counts{Bad: 1, Total: 5}, minTotal: 20, want: Fail},
		{name: "already at 2%, a few requests at 3% are not blamed", obs: Counts{Bad: 15, Total: 500}, base: Counts{Bad: 120, Total: 6000}, want: Warn, before: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Ratio(c.obs, c.base, c.minTotal, errorRateThresholds())
			if v.Status != c.want {
				t.Fatalf("status = %s, want %s (reason %q)", v.Status, c.want, v.Reason)
			}
			if !strings.Contains(v.Reason, c.wantReason) {
				t.Errorf("reason %q does not contain %q", v.Reason, c.wantReason)
			}
			if v.BreachingBefore != c.before {
				t.Errorf("breaching before = %v, want %v", v.BreachingBefore, c.before)
			}
			if v.Status == Fail && !(v.Confidence >= 0.99) {
				t.Errorf("a failure carries confidence %g, want >= 0.99", v.Confidence)
			}
		})
	}
}

// TestRatioFalseFailureRate checks the promise behind the statistics: a
// service at 0.5% errors judged against a 1% line is failed far less often
// than 1% of the time, whatever its traffic.
func TestRatioFalseFailureRate(t *testing.T) {
	th := errorRateThresholds()
	for _, n := range []int{20, 40, 120, 1000} {
		var pFail float64
		for k := 0; k <= n; k++ {
			if Ratio(Counts{Bad: float64(k), Total: float64(n)}, Counts{}, 20, th).Status == Fail {
				pFail += binomialPMF(k, n, 0.005)
			}
		}
		if pFail > 0.01 {
			t.Errorf("n=%d: a 0.5%% service fails with probability %.4f, want <= 0.01", n, pFail)
		}
	}
}

func TestQuantile(t *testing.T) {
	// 1000 requests between 10 and 50 ms: p99 about 50 ms.
	base := NewHistogram([]Bucket{{0.01, 0}, {0.025, 400}, {0.05, 1000}, {0.1, 1000}, {0.25, 1000}, {0.5, 1000}, {1, 1000}, {math.Inf(1), 1000}})
	// The same shape four times slower.
	slow := NewHistogram([]Bucket{{0.01, 0}, {0.025, 0}, {0.05, 0}, {0.1, 200}, {0.25, 300}, {0.5, 300}, {1, 300}, {math.Inf(1), 300}})
	same := NewHistogram([]Bucket{{0.01, 0}, {0.025, 120}, {0.05, 300}, {0.1, 300}, {0.25, 300}, {0.5, 300}, {1, 300}, {math.Inf(1), 300}})
	few := NewHistogram([]Bucket{{0.1, 0}, {0.25, 5}, {math.Inf(1), 5}})
	th := Thresholds{Warn: MustParseRule("> 500ms"), Fail: MustParseRule("> 2x baseline"), Floor: 0.1, HasFloor: true, Tolerance: 0.25, Confidence: 0.99}
	cases := []struct {
		name string
		h    Histogram
		base Histogram
		want Status
	}{
		{"unchanged latency passes", same, base, Pass},
		{"four times slower fails", slow, base, Fail},
		{"too few observations is no data", few, base, NoData},
		{"empty histogram is no data", nil, base, NoData},
		{"no baseline falls back to the floor", slow, nil, Fail},
		{"no baseline and under the floor passes", same, nil, Pass},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Quantile(c.h, c.base, 0.99, 50, th)
			if v.Status != c.want {
				t.Fatalf("status = %s, want %s (value %g line %g reason %q)", v.Status, c.want, v.Value, v.Line, v.Reason)
			}
		})
	}
	// 2x a ~49.6 ms baseline is below the 100 ms floor, so the floor is the line.
	if v := Quantile(slow, base, 0.99, 50, th); math.Abs(v.Baseline-0.0496) > 1e-3 || v.Line != 0.1 {
		t.Errorf("baseline p99 = %g line = %g, want ~0.0496 and the 0.1 floor", v.Baseline, v.Line)
	}
	th.Floor = 0.05
	if v := Quantile(slow, base, 0.99, 50, th); v.Line != 2*v.Baseline {
		t.Errorf("line = %g, want twice the baseline %g once above the floor", v.Line, v.Baseline)
	}
}

func TestHistogramQuantileMatchesPromQL(t *testing.T) {
	h := NewHistogram([]Bucket{{math.Inf(1), 100}, {0.5, 90}, {0.1, 50}, {0.25, 45}}) // unsorted, non-monotonic
	cases := []struct{ q, want float64 }{
		{0.5, 0.1},    // rank 50 sits at the top of the 0.1 bucket
		{0.7, 0.3},    // rank 70: 20 of 40 into (0.25, 0.5] -> 0.375? see below
		{0.95, 0.5},   // rank 95 is in +Inf: highest finite bound
		{0.25, 0.05},  // rank 25 of 50 in (0, 0.1]
		{0.45, 0.09},  // rank 45 of 50 in (0, 0.1]
		{0.9, 0.5},    // rank 90 at the top of (0.25, 0.5]
		{0.55, 0.25},  // bucket (0.1,0.25] holds nothing after monotonic fix; rank 55 is in (0.25,0.5]
		{0.6, 0.3125}, // 10 of 40 into (0.25,0.5]
	}
	cases[1].want = 0.25 + 0.25*(20.0/40)
	cases[6].want = 0.25 + 0.25*(5.0/40)
	for _, c := range cases {
		if got := h.Quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%g = %g, want %g", c.q, got, c.want)
		}
	}
	if got := h.CountAtOrBelow(0.375); math.Abs(got-70) > 1e-9 {
		t.Errorf("count at or below 0.375 = %g, want 70", got)
	}
	if NewHistogram([]Bucket{{0.1, 3}}) != nil {
		t.Error("a histogram without +Inf must be rejected")
	}
}

func TestRate(t *testing.T) {
	th := Thresholds{Warn: MustParseRule("< 0.5x baseline"), Fail: MustParseRule("< 0.2x baseline"), Confidence: 0.99}
	cases := []struct {
		name                       string
		count, secs, base, baseSec float64
		want                       Status
	}{
		{"steady traffic passes", 200, 4, 6000, 120, Pass},
		{"traffic stopped at 50 req/s fails", 0, 4, 6000, 120, Fail},
		{"one empty window at 1 req/s is not proof", 0, 4, 120, 120, Warn},
		{"an empty minute at 1 req/s is", 0, 60, 120, 120, Fail},
		{"half the traffic warns", 95, 4, 6000, 120, Warn},
		{"no baseline draws no line", 0, 4, nan, 0, Pass},
		{"nothing counted is no data", nan, 4, 6000, 120, NoData},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Rate(c.count, c.secs, c.base, c.baseSec, th)
			if v.Status != c.want {
				t.Fatalf("status = %s, want %s (reason %q)", v.Status, c.want, v.Reason)
			}
		})
	}
}

func TestValue(t *testing.T) {
	cpu := Thresholds{Warn: MustParseRule("> 70%"), Fail: MustParseRule("> 90%"), Tolerance: 0.25}
	cases := []struct {
		name     string
		v, base  float64
		th       Thresholds
		want     Status
		inReason string
	}{
		{"NaN is no data", nan, 0.2, cpu, NoData, "NaN"},
		{"+Inf is a value and crosses", math.Inf(1), 0.2, cpu, Fail, ""},
		{"below both lines passes", 0.3, 0.2, cpu, Pass, ""},
		{"exactly at the warn line passes", 0.7, 0.2, cpu, Pass, ""},
		{"above the warn line warns", 0.75, 0.2, cpu, Warn, "warn line"},
		{"above the fail line fails", 0.95, 0.2, cpu, Fail, ""},
		{"breaching before and no worse warns", 0.96, 0.93, cpu, Warn, "breaching before"},
		{"breaching before and much worse fails", 1.5, 0.93, cpu, Fail, "already beyond"},
		{"relative rule without baseline judges the warn line", 5, nan,
			Thresholds{Warn: MustParseRule("> 1"), Fail: MustParseRule("> 2x baseline")}, Warn, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Value(c.v, c.base, c.th)
			if v.Status != c.want || !strings.Contains(v.Reason, c.inReason) {
				t.Fatalf("got %s %q, want %s containing %q", v.Status, v.Reason, c.want, c.inReason)
			}
		})
	}
}

func TestTracker(t *testing.T) {
	cases := []struct {
		name       string
		limits     Limits
		seq        []Status
		failed     bool
		gaveUp     bool
		judgedSome bool
	}{
		{"one failure below the limit", Limits{2, 3}, []Status{Fail}, false, false, true},
		{"consecutive failures reach the limit", Limits{2, 3}, []Status{Fail, Fail}, true, false, true},
		{"a pass in between resets", Limits{2, 3}, []Status{Fail, Pass, Fail}, false, false, true},
		{"no data in between resets", Limits{2, 3}, []Status{Fail, NoData, Fail}, false, false, true},
		{"errors do not break a failure streak", Limits{2, 3}, []Status{Fail, Error, Fail}, true, false, true},
		{"errors reach their limit", Limits{2, 3}, []Status{Error, Error, Error}, false, true, false},
		{"only no data judged nothing", Limits{2, 3}, []Status{NoData, NoData}, false, false, false},
		{"zero limits mean one", Limits{}, []Status{Fail}, true, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := Tracker{Limits: c.limits}
			for _, s := range c.seq {
				tr.Observe(s)
			}
			if tr.Failed() != c.failed || tr.GaveUp() != c.gaveUp || tr.Judged() != c.judgedSome {
				t.Fatalf("failed=%v gaveUp=%v judged=%v, want %v %v %v", tr.Failed(), tr.GaveUp(), tr.Judged(), c.failed, c.gaveUp, c.judgedSome)
			}
		})
	}
}

func TestParseRule(t *testing.T) {
	cases := []struct {
		in       string
		op       Op
		value    float64
		relative bool
		err      string
	}{
		{in: "> 0.01", op: OpGreater, value: 0.01},
		{in: ">1%", op: OpGreater, value: 0.01},
		{in: ">= 500ms", op: OpGreaterEqual, value: 0.5},
		{in: "< 0.2x baseline", op: OpLess, value: 0.2, relative: true},
		{in: "> 2x baseline", op: OpGreater, value: 2, relative: true},
		{in: "<= 512Mi", op: OpLessEqual, value: 512 << 20},
		{in: "> 1m", op: OpGreater, value: 60},
		{in: "", err: "empty rule"},
		{in: "= 3", err: "must start with"},
		{in: "> lots", err: "not a finite number"},
		{in: "> NaN", err: "not a finite number"},
		{in: "> 2 baseline", err: "relative rule reads like"},
		{in: "> -1x baseline", err: "must be positive"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			r, err := ParseRule(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Op != c.op || math.Abs(r.Value-c.value) > 1e-12 || r.Relative != c.relative {
				t.Fatalf("got %+v", r)
			}
		})
	}
}
