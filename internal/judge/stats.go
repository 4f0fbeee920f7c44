package judge

import "math"

// The tests in this file are exact (not normal approximations), because the
// cases that matter most for a deploy, a few errors among a few dozen
// requests, are the ones where approximations such as Wald's or Wilson's are
// too eager to call a difference significant.
//
// Counts derived from Prometheus's increase() are extrapolated and so are
// real numbers, not integers; the incomplete beta and gamma functions take
// real arguments, which lets the tests use them as they are.

// binomialAtLeast returns P(X >= k) for X ~ Binomial(n, p): the chance of
// seeing k or more bad events among n if the true rate were p.
func binomialAtLeast(k, n, p float64) float64 {
	switch {
	case k <= 0:
		return 1
	case k > n:
		return 0
	case p <= 0:
		return 0
	case p >= 1:
		return 1
	}
	return regIncBeta(k, n-k+1, p)
}

// worseThanP is the p-value of "the rate of bad among total is at most c
// times the rate of baseBad among baseTotal", by the exact conditional
// test of two rates: of all bad events on both sides, under that
// hypothesis the first side's share is binomial with its share of the
// traffic, weighted by c.
func worseThanP(bad, total, baseBad, baseTotal, c float64) float64 {
	return binomialAtLeast(bad, bad+baseBad, c*total/(baseTotal+c*total))
}

// binomialAtMost returns P(X <= k) for X ~ Binomial(n, p).
func binomialAtMost(k, n, p float64) float64 {
	switch {
	case k >= n:
		return 1
	case k < 0:
		return 0
	case p <= 0:
		return 1
	case p >= 1:
		return 0
	}
	return 1 - regIncBeta(k+1, n-k, p)
}

// poissonAtMost returns P(X <= k) for X ~ Poisson(mean).
func poissonAtMost(k, mean float64) float64 {
	switch {
	case k < 0:
		return 0
	case mean <= 0:
		return 1
	}
	return regGammaQ(k+1, mean)
}

// PoissonAtLeast returns P(X >= k) for X ~ Poisson(mean): how surprising k
// events are when mean were expected.
func PoissonAtLeast(k, mean float64) float64 { return poissonAtLeast(k, mean) }

// poissonAtLeast returns P(X >= k) for X ~ Poisson(mean).
func poissonAtLeast(k, mean float64) float64 {
	switch {
	case k <= 0:
		return 1
	case mean <= 0:
		return 0
	}
	return regGammaP(k, mean)
}

// regIncBeta is the regularized incomplete beta function I_x(a, b), by the
// continued fraction of Numerical Recipes §6.4 evaluated with the modified
// Lentz method.
func regIncBeta(a, b, x float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	la, _ := math.Lgamma(a + b)
	lb, _ := math.Lgamma(a)
	lc, _ := math.Lgamma(b)
	front := math.Exp(la - lb - lc + a*math.Log(x) + b*math.Log1p(-x))
	// The continued fraction converges quickly for x < (a+1)/(a+b+2);
	// otherwise use the symmetry I_x(a,b) = 1 - I_{1-x}(b,a).
	if x < (a+1)/(a+b+2) {
		return front * betaContinuedFraction(a, b, x) / a
	}
	return 1 - front*betaContinuedFraction(b, a, 1-x)/b
}

func betaContinuedFraction(a, b, x float64) float64 {
	const (
		maxIter = 500
		eps     = 1e-15
		tiny    = 1e-300
	)
	qab, qap, qam := a+b, a+1, a-1
	c, d := 1.0, 1-qab*x/qap
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	h := d
	for m := 1; m <= maxIter; m++ {
		fm := float64(m)
		m2 := 2 * fm
		aa := fm * (b - fm) * x / ((qam + m2) * (a + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		h *= d * c
		aa = -(a + fm) * (qab + fm) * x / ((a + m2) * (qap + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return h
}

// regGammaP is the regularized lower incomplete gamma function P(a, x).
func regGammaP(a, x float64) float64 {
	if x <= 0 {
		return 0
	}
	if x < a+1 {
		return gammaSeries(a, x)
	}
	return 1 - gammaContinuedFraction(a, x)
}

// regGammaQ is the regularized upper incomplete gamma function Q(a, x).
func regGammaQ(a, x float64) float64 {
	if x <= 0 {
		return 1
	}
	if x < a+1 {
		return 1 - gammaSeries(a, x)
	}
	return gammaContinuedFraction(a, x)
}

func gammaSeries(a, x float64) float64 {
	lg, _ := math.Lgamma(a)
	sum := 1 / a
	del := sum
	ap := a
	for range 1000 {
		ap++
		del *= x / ap
		sum += del
		if math.Abs(del) < math.Abs(sum)*1e-15 {
			break
		}
	}
	return sum * math.Exp(-x+a*math.Log(x)-lg)
}

func gammaContinuedFraction(a, x float64) float64 {
	const tiny = 1e-300
	lg, _ := math.Lgamma(a)
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i <= 1000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lg) * h
}
