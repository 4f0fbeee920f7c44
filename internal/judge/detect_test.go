package judge

import (
	"math"
	"testing"
)

func TestSmallestShareAndEventsToProve(t *testing.T) {
	th := errorRateThresholds()
	th.Test = Sequential
	cases := []struct {
		total     float64
		wantAbove float64 // the smallest share is just above this
		wantBelow float64 // and at most this
	}{
		{total: 12, wantAbove: 0.2, wantBelow: 0.3}, // 0.3 req/s for 40s
		{total: 2000, wantAbove: 0.015, wantBelow: 0.02},
		// The mixture's mildest effect is 1.5x the line's odds: below it, even a
		// million requests prove little.
		{total: 1e6, wantAbove: 0.01, wantBelow: 0.0125},
	}
	for _, c := range cases {
		got := th.SmallestShare(c.total, 0.01)
		if !(got > c.wantAbove && got <= c.wantBelow) {
			t.Errorf("%g requests: smallest provable share %g, want in (%g, %g]", c.total, got, c.wantAbove, c.wantBelow)
		}
		// Direct: the share found proves, a hair less does not.
		if !th.provable(got*c.total, c.total, 0.01) || th.provable((got-1e-6)*c.total, c.total, 0.01) {
			t.Errorf("%g requests: %g is not the boundary", c.total, got)
		}
	}
	if got := th.SmallestShare(1, 0.01); !math.IsNaN(got) {
		t.Errorf("1 request proves %g, want nothing", got)
	}
	n := th.EventsToProve(0.05, 0.01)
	if !th.provable(0.05*n, n, 0.01) || th.provable(0.05*(n-1), n-1, 0.01) {
		t.Errorf("5%% errors need %g requests: not the boundary", n)
	}
	if n < 100 || n > 250 {
		t.Errorf("5%% errors against a 1%% line need %g requests, want about 150", n)
	}
	if got := th.EventsToProve(0.009, 0.01); !math.IsInf(got, 1) {
		t.Errorf("a share under the line is proven after %g requests", got)
	}
}

func TestLargestProvableRate(t *testing.T) {
	th := Thresholds{Fail: MustParseRule("< 0.2x baseline"), Confidence: 0.99, Test: Spent, Look: 20}
	// 50 req/s before: the line is 10/s; over 4s a stop is proven, and so
	// is a drop to a few per second.
	if got := th.LargestProvableRate(10, 4); !(got > 0 && got < 10) {
		t.Errorf("50 req/s: largest provable rate %g, want between 0 and 10", got)
	}
	// 1 req/s before: the line is 0.2/s, 0.8 requests in 4s: nothing.
	if got := th.LargestProvableRate(0.2, 4); !math.IsNaN(got) {
		t.Errorf("1 req/s: a collapse to %g/s is provable, want nothing", got)
	}
}
