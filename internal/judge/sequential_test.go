package judge

import (
	"math"
	"math/rand/v2"
	"testing"
)

// watchPolicy is how a simulated watch judges its looks.
type watchPolicy struct {
	test         Test
	failureLimit int
}

var (
	sequentialPolicy = watchPolicy{test: Sequential, failureLimit: 1}
	// legacyPolicy is the judge before the sequential test: every look a
	// fresh 99% test, two failing looks in a row (failure_limit: 2).
	legacyPolicy = watchPolicy{test: PerLook, failureLimit: 2}
	// weakenedPolicy is a deliberately invalid one: a fresh 99% test at
	// every look and nothing guarding against the many looks.
	weakenedPolicy = watchPolicy{test: PerLook, failureLimit: 1}
)

// simulation is a service watched many times over.
type simulation struct {
	seed            uint64
	deploys         int
	baseRate, rate  float64 // the true error rates before and after the deploy
	rps             float64
	baselineSeconds float64
	looks           int
	lookEvery       float64 // seconds between looks
	policy          watchPolicy
}

// run watches the deploys as the engine does with the default checks: the
// baseline counts baselineSeconds of requests before the deploy, every
// look counts all requests since the warm-up ($since_warmup), and the
// policy decides. It returns the share of deploys failed and the mean
// time to the failure of those that failed.
func (s simulation) run() (failedShare, meanSeconds float64) {
	rng := rand.New(rand.NewPCG(s.seed, 0))
	th := errorRateThresholds()
	th.Test = s.policy.test
	failed, seconds := 0, 0.0
	for range s.deploys {
		baseTotal := poissonSample(rng, s.rps*s.baselineSeconds)
		base := Counts{Total: baseTotal, Bad: binomialSample(rng, baseTotal, s.baseRate)}
		var total, bad float64
		tr := Tracker{Limits: Limits{Failures: s.policy.failureLimit, Errors: 3}}
		for look := 1; look <= s.looks; look++ {
			n := poissonSample(rng, s.rps*s.lookEvery)
			total += n
			bad += binomialSample(rng, n, s.rate)
			v := Ratio(Counts{Bad: bad, Total: total}, base, 20, th.AtLook(look))
			if tr.Observe(v.Status) && tr.Failed() {
				failed++
				seconds += float64(look) * s.lookEvery
				break
			}
		}
	}
	if failed > 0 {
		meanSeconds = seconds / float64(failed)
	}
	return float64(failed) / float64(s.deploys), meanSeconds
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

// binomialSample draws the bad events among n at rate p: one by one for
// few events, else by the Poisson or normal approximation.
func binomialSample(rng *rand.Rand, n, p float64) float64 {
	switch {
	case n <= 200:
		var k float64
		for range int(n) {
			if rng.Float64() < p {
				k++
			}
		}
		return k
	case p <= 0.05:
		return min(n, poissonSample(rng, n*p))
	}
	sd := math.Sqrt(n * p * (1 - p))
	return min(n, max(0, float64(int(n*p+rng.NormFloat64()*sd+0.5))))
}

// healthyServices are the services that must not be failed: at half the
// line, just under it, and already beyond it before an unchanged deploy.
var healthyServices = []struct {
	name           string
	baseRate, rate float64
}{
	{"0.5% errors", 0.005, 0.005},
	{"0.9% errors against a 1% line", 0.009, 0.009},
	{"2% errors before and after the deploy", 0.02, 0.02},
}

// TestWholeWatchesRarelyFailAHealthyService: 2,000 watches of each healthy
// service at 1, 10, 50 and 500 req/s, each a five-minute monitor looked at
// every 5 s (60 looks, every one counted) after a 2-minute baseline. At
// most 1% may end failed. The same simulation with the boundary weakened
// (a fresh 99% test at every look, nothing else) must break the bound, or
// this test could not tell a valid judge from an invalid one.
func TestWholeWatchesRarelyFailAHealthyService(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	const watches = 2000
	weakenedBroke := false
	for i, svc := range healthyServices {
		for j, rps := range []float64{1, 10, 50, 500} {
			sim := simulation{
				seed: uint64(100*i + j), deploys: watches, baseRate: svc.baseRate, rate: svc.rate, rps: rps,
				baselineSeconds: 120, looks: 60, lookEvery: 5, policy: sequentialPolicy,
			}
			got, _ := sim.run()
			t.Logf("%s at %g req/s: %.2f%% of %d watches failed", svc.name, rps, 100*got, watches)
			if got > 0.01 {
				t.Errorf("%s at %g req/s: %.2f%% of watches failed, want <= 1%%", svc.name, rps, 100*got)
			}
			sim.policy = weakenedPolicy
			weak, _ := sim.run()
			t.Logf("  with the weakened boundary: %.2f%%", 100*weak)
			weakenedBroke = weakenedBroke || weak > 0.01
		}
	}
	if !weakenedBroke {
		t.Error("the weakened boundary kept every false-failure rate under 1%: the simulation cannot fail")
	}
}

// TestWholeWatchesCatchRegressions: real regressions are still caught, and
// faster than by the judge before the sequential test, which needed two
// failing looks in a row. Looks every second, as on a 1 s scrape.
func TestWholeWatchesCatchRegressions(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	for _, c := range []struct {
		name          string
		rate, rps     float64
		seconds       int
		wantShare     float64
		wantMeanUnder float64
	}{
		{"5% errors at 50 req/s", 0.05, 50, 40, 0.99, 5},
		{"30% errors at 50 req/s", 0.30, 50, 40, 1, 2},
		{"2% errors at 50 req/s", 0.02, 50, 120, 0.9, 60},
		{"3% errors at 5 req/s", 0.03, 5, 300, 0.9, 150},
	} {
		sim := simulation{seed: 9, deploys: 500, baseRate: 0.001, rate: c.rate, rps: c.rps,
			baselineSeconds: 120, looks: c.seconds, lookEvery: 1, policy: sequentialPolicy}
		got, mean := sim.run()
		sim.policy = legacyPolicy
		old, oldMean := sim.run()
		t.Logf("%s: caught in %.1f%% of watches after %.1fs on average (the per-look judge with failure_limit 2: %.1f%% after %.1fs)",
			c.name, 100*got, mean, 100*old, oldMean)
		if got < c.wantShare || mean > c.wantMeanUnder {
			t.Errorf("%s: caught in %.1f%% after %.1fs, want >= %.0f%% within %.0fs", c.name, 100*got, mean, 100*c.wantShare, c.wantMeanUnder)
		}
	}
}
