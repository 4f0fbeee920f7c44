package judge

import (
	"math"
	"testing"
)

// binomialPMF is the textbook sum the incomplete-beta form must agree with.
func binomialPMF(k, n int, p float64) float64 {
	lc, _ := math.Lgamma(float64(n + 1))
	lk, _ := math.Lgamma(float64(k + 1))
	lnk, _ := math.Lgamma(float64(n - k + 1))
	return math.Exp(lc - lk - lnk + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
}

func TestBinomialTailsMatchDirectSummation(t *testing.T) {
	for _, n := range []int{1, 5, 40, 200, 3000} {
		for _, p := range []float64{0.001, 0.01, 0.05, 0.3, 0.9} {
			for k := 0; k <= n; k += max(1, n/37) {
				var atLeast, atMost float64
				for i := 0; i <= n; i++ {
					pm := binomialPMF(i, n, p)
					if i >= k {
						atLeast += pm
					}
					if i <= k {
						atMost += pm
					}
				}
				if got := binomialAtLeast(float64(k), float64(n), p); math.Abs(got-atLeast) > 1e-9 {
					t.Errorf("P(X>=%d | n=%d, p=%g) = %g, want %g", k, n, p, got, atLeast)
				}
				if got := binomialAtMost(float64(k), float64(n), p); math.Abs(got-atMost) > 1e-9 {
					t.Errorf("P(X<=%d | n=%d, p=%g) = %g, want %g", k, n, p, got, atMost)
				}
			}
		}
	}
}

func TestPoissonTailsMatchDirectSummation(t *testing.T) {
	for _, mean := range []float64{0.1, 1, 4.6, 20, 250} {
		for k := 0; k <= 400; k += 7 {
			var atMost float64
			for i := 0; i <= k; i++ {
				lg, _ := math.Lgamma(float64(i + 1))
				atMost += math.Exp(float64(i)*math.Log(mean) - mean - lg)
			}
			if got := poissonAtMost(float64(k), mean); math.Abs(got-atMost) > 1e-9 {
				t.Errorf("P(X<=%d | mean=%g) = %g, want %g", k, mean, got, atMost)
			}
			if k > 0 {
				// P(X >= k) = 1 - P(X <= k-1)
				prev := atMost - math.Exp(float64(k)*math.Log(mean)-mean-lgam(k+1))
				if got := poissonAtLeast(float64(k), mean); math.Abs(got-(1-prev)) > 1e-9 {
					t.Errorf("P(X>=%d | mean=%g) = %g, want %g", k, mean, got, 1-prev)
				}
			}
		}
	}
}

func lgam(n int) float64 { v, _ := math.Lgamma(float64(n)); return v }

func TestTailsAtEdges(t *testing.T) {
	cases := []struct {
		name string
		got  float64
		want float64
	}{
		{"no bad events is always at least zero", binomialAtLeast(0, 10, 0.5), 1},
		{"more bad than total is impossible", binomialAtLeast(11, 10, 0.5), 0},
		{"a zero rate never produces events", binomialAtLeast(1, 10, 0), 0},
		{"a certain rate always does", binomialAtLeast(10, 10, 1), 1},
		{"at most all events is certain", binomialAtMost(10, 10, 0.3), 1},
		{"poisson with zero mean sees nothing", poissonAtMost(0, 0), 1},
		{"an empty second at 4.6 expected events", poissonAtMost(0, 4.6), math.Exp(-4.6)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if math.Abs(c.got-c.want) > 1e-12 {
				t.Fatalf("got %g, want %g", c.got, c.want)
			}
		})
	}
}

func TestSure(t *testing.T) {
	for c, want := range map[float64]string{
		0.5: "50.0%", 0.7836: "78.4%", 0.99: "99%", 0.9949: "99.4%", 0.9998: "99.98%",
		0.99989: "99.98%", math.NaN(): "not known how", 0.999985: "99.998%", 0.999999: "over 99.999%", 1: "over 99.999%",
	} {
		if got := sure(c); got != want {
			t.Errorf("sure(%g) = %q, want %q", c, got, want)
		}
	}
}
