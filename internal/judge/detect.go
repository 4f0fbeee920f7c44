package judge

import "math"

// What a watch can see, said before it runs: the smallest regression a
// check can prove within the monitor window at the traffic the baseline
// measured, and how long a given regression takes to prove. Both assume
// the counts come in as expected (the mean); real counts scatter around it.

// FailLine is the fail line the thresholds draw for a baseline (NaN when
// none can be drawn), as the judge will apply it.
func (t Thresholds) FailLine(baseline float64) float64 {
	line, ok, _ := t.failLine(baseline)
	if !ok {
		return math.NaN()
	}
	return line
}

// provable reports whether bad of total events prove a share beyond line,
// by the thresholds' test at their look.
func (t Thresholds) provable(bad, total, line float64) bool {
	return t.pAbove(bad, total, line) <= t.level()
}

// SmallestShare is the smallest share of bad events among total that the
// thresholds' test proves beyond line (an upward line, such as an error
// share or the share of requests slower than a latency line). It is NaN
// when not even all total events being bad would prove it.
func (t Thresholds) SmallestShare(total, line float64) float64 {
	if !(total > 0) || !t.provable(total, total, line) {
		return math.NaN()
	}
	lo, hi := line, 1.0
	for range 60 {
		mid := (lo + hi) / 2
		if t.provable(mid*total, total, line) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// EventsToProve is how many events at a true share of bad ones the test
// needs to prove the share beyond line: +Inf when it never can (a share
// at or under the line).
func (t Thresholds) EventsToProve(share, line float64) float64 {
	if !(share > line) || share > 1 {
		return math.Inf(1)
	}
	hi := 1.0
	for !t.provable(share*hi, hi, line) {
		hi *= 2
		if hi > 1e12 {
			return math.Inf(1)
		}
	}
	lo := hi / 2
	for hi-lo > 1 {
		mid := math.Floor((lo + hi) / 2)
		if t.provable(share*mid, mid, line) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// LargestProvableRate is, for a collapse of a rate (a downward line
// events/s) counted over windows of seconds, the highest rate the test
// proves below the line in one window: 0 when only a full stop can be
// proven, NaN when not even a full stop can.
func (t Thresholds) LargestProvableRate(line, seconds float64) float64 {
	down := t
	down.Fail.Op = OpLess
	mean := line * seconds
	if !(mean > 0) || down.pPoissonBeyond(0, mean) > t.level() {
		return math.NaN()
	}
	lo, hi := 0.0, mean // counts
	for range 60 {
		mid := (lo + hi) / 2
		if down.pPoissonBeyond(math.Floor(mid), mean) <= t.level() {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Floor(lo) / seconds
}
