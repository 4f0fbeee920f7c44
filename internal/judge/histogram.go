package judge

import (
	"math"
	"sort"
)

// Bucket is one cumulative histogram bucket: Count observations were at or
// below UpperBound.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Histogram is a cumulative histogram as Prometheus exposes it: buckets
// sorted by upper bound, the last one +Inf. Build it with NewHistogram.
type Histogram []Bucket

// NewHistogram sorts the buckets and makes the counts monotonic, as
// Prometheus's histogram_quantile does: increase() over buckets scraped at
// slightly different moments can leave a bucket a little below its
// predecessor. It returns nil unless a +Inf bucket and one finite bucket
// are present, since no quantile can be drawn from less.
func NewHistogram(buckets []Bucket) Histogram {
	h := make(Histogram, 0, len(buckets))
	for _, b := range buckets {
		if math.IsNaN(b.UpperBound) || math.IsNaN(b.Count) {
			continue
		}
		h = append(h, b)
	}
	sort.Slice(h, func(i, j int) bool { return h[i].UpperBound < h[j].UpperBound })
	if len(h) < 2 || !math.IsInf(h[len(h)-1].UpperBound, 1) {
		return nil
	}
	for i := 1; i < len(h); i++ {
		if h[i].Count < h[i-1].Count {
			h[i].Count = h[i-1].Count
		}
	}
	return h
}

// Count is the number of observations.
func (h Histogram) Count() float64 {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].Count
}

// Quantile estimates the q-quantile exactly as PromQL's histogram_quantile
// does, so that the value deploywatch reports is the one a user sees in
// Grafana: linear interpolation inside the bucket, and the highest finite
// bound when the rank falls in the +Inf bucket.
func (h Histogram) Quantile(q float64) float64 {
	n := h.Count()
	if len(h) < 2 || !(n > 0) {
		return math.NaN()
	}
	rank := q * n
	b := sort.Search(len(h)-1, func(i int) bool { return h[i].Count >= rank })
	if b == len(h)-1 {
		return h[len(h)-2].UpperBound
	}
	if b == 0 && h[0].UpperBound <= 0 {
		return h[0].UpperBound
	}
	start, end, below := 0.0, h[b].UpperBound, 0.0
	if b > 0 {
		start, below = h[b-1].UpperBound, h[b-1].Count
	}
	inBucket := h[b].Count - below
	if inBucket == 0 {
		return end
	}
	return start + (end-start)*((rank-below)/inBucket)
}

// CountAtOrBelow estimates how many observations were at or below x, with
// the same linear interpolation inside a bucket that Quantile uses.
// Observations in the +Inf bucket are counted as above any x.
func (h Histogram) CountAtOrBelow(x float64) float64 {
	if len(h) < 2 {
		return 0
	}
	lower, below := 0.0, 0.0
	for i := 0; i < len(h)-1; i++ {
		b := h[i]
		if x >= b.UpperBound {
			lower, below = b.UpperBound, b.Count
			continue
		}
		if x <= lower || b.UpperBound <= lower {
			return below
		}
		return below + (b.Count-below)*(x-lower)/(b.UpperBound-lower)
	}
	return below
}

// Beyond counts the observations above line (slower than a latency line)
// among all, with CountAtOrBelow's interpolation.
func (h Histogram) Beyond(line float64) Counts {
	return Counts{Bad: max(h.Count()-h.CountAtOrBelow(line), 0), Total: h.Count()}
}

// countAt is the cumulative count at a bucket bound: CountAtOrBelow's for
// a finite one, every observation for +Inf.
func (h Histogram) countAt(ub float64) float64 {
	if math.IsInf(ub, 1) {
		return h.Count()
	}
	return h.CountAtOrBelow(ub)
}

// SumHistograms adds histograms bucket by bucket (by upper bound; a bound
// one of them lacks is read off it by CountAtOrBelow's interpolation).
// Histograms without buckets are left out.
func SumHistograms(hs ...Histogram) Histogram {
	return combine(hs, func(acc, v float64) float64 { return acc + v })
}

// MaxHistograms is, bucket by bucket, the largest of measurements of the
// same cumulative counts: the high-water mark of counts that should only
// grow.
func MaxHistograms(hs ...Histogram) Histogram {
	return combine(hs, math.Max)
}

func combine(hs []Histogram, op func(acc, v float64) float64) Histogram {
	bounds := map[float64]bool{}
	for _, h := range hs {
		for _, b := range h {
			bounds[b.UpperBound] = true
		}
	}
	if len(bounds) == 0 {
		return nil
	}
	var out []Bucket
	for ub := range bounds {
		acc := 0.0
		for _, h := range hs {
			if len(h) == 0 {
				continue
			}
			acc = op(acc, h.countAt(ub))
		}
		out = append(out, Bucket{UpperBound: ub, Count: acc})
	}
	return NewHistogram(out)
}

// DiffHistograms is what cur counted since prev, bucket by bucket
// (cumulative counts measured at two moments): counts that went down, as
// extrapolated counts can, are read as none.
func DiffHistograms(cur, prev Histogram) Histogram {
	if len(cur) == 0 {
		return nil
	}
	out := make([]Bucket, 0, len(cur))
	for _, b := range cur {
		out = append(out, Bucket{UpperBound: b.UpperBound, Count: max(b.Count-prev.countAt(b.UpperBound), 0)})
	}
	return NewHistogram(out)
}
