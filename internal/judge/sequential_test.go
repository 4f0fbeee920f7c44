package judge

import (
	"math"
	"math/rand/v2"
	"testing"
)

// simulateDeploys watches deploys of a service whose true error rate goes
// from baseRate before the deploy to rate after it, as the engine does with the default checks: every look counts all
// requests since the warm-up ($since_warmup), and failureLimit consecutive
// failing looks fail the check. It returns the share of deploys failed.
func simulateDeploys(seed uint64, deploys int, baseRate, rate, rps float64, looks int, lookEvery float64, failureLimit int) float64 {
	rng := rand.New(rand.NewPCG(seed, 0))
	th := errorRateThresholds()
	// A baseline of 10 minutes.
	base := Counts{Total: rps * 600, Bad: rps * 600 * baseRate}
	failed := 0
	for range deploys {
		var total, bad float64
		tr := Tracker{Limits: Limits{Failures: failureLimit, Errors: 3}}
		for range looks {
			n := poissonSample(rng, rps*lookEvery)
			total += n
			for range int(n) {
				if rng.Float64() < rate {
					bad++
				}
			}
			if tr.Observe(Ratio(Counts{Bad: bad, Total: total}, base, 20, th).Status) && tr.Failed() {
				failed++
				break
			}
		}
	}
	return float64(failed) / float64(deploys)
}

func poissonSample(rng *rand.Rand, mean float64) float64 {
	// Normal approximation is enough at these means; clamp at zero.
	if mean > 30 {
		return max(0, float64(int(mean+rng.NormFloat64()*math.Sqrt(mean)+0.5)))
	}
	n, p, l := 0.0, 1.0, math.Exp(-mean)
	for {
		p *= rng.Float64()
		if p <= l {
			return n
		}
		n++
	}
}

// TestSequentialLooksRarelyRollBackAHealthyService: the judge's 99% holds
// for one look, but a watch looks 30 times (a 5m monitor every 10s) at
// ever more requests. A service at half the line must still be failed
// less than 1% of the time over the whole watch; the rates for a service
// just under the line are logged, measured the same way.
func TestSequentialLooksRarelyRollBackAHealthyService(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	for _, rps := range []float64{1, 10, 50, 500} {
		got := simulateDeploys(1, 2000, 0.005, 0.005, rps, 30, 10, 2)
		t.Logf("0.5%% errors at %g req/s: %.2f%% of 2000 watches failed", rps, 100*got)
		if got > 0.01 {
			t.Errorf("0.5%% errors at %g req/s: %.2f%% of watches failed, want <= 1%%", rps, 100*got)
		}
		near := simulateDeploys(2, 500, 0.009, 0.009, rps, 30, 10, 2)
		t.Logf("0.9%% errors at %g req/s: %.2f%% of 500 watches failed", rps, 100*near)
	}
	// And a real regression is still caught: 5% at 50 req/s.
	if got := simulateDeploys(3, 200, 0.001, 0.05, 50, 30, 10, 2); got < 0.99 {
		t.Errorf("5%% errors at 50 req/s caught in %.1f%% of watches, want >= 99%%", 100*got)
	}
}
