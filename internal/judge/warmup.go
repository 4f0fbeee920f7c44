package judge

import (
	"fmt"
	"math"
)

// During the warm-up a new version is allowed to stumble: caches are
// cold, connections are being opened, the first requests are slow or fail.
// Only a release that is overwhelmingly bad (crash-level) may fail there,
// and it should, at once, rather than serve errors until the warm-up ends.
const (
	// WarmupFactor is how far beyond the fail line an error share must be,
	// during the warm-up, to fail at once: five times the line, or halfway
	// from the line to every request failing when that is less.
	WarmupFactor = 5
	// WarmupStrictness is how much surer than the check's confidence the
	// warm-up's test must be: with 99% it needs 99.99%.
	WarmupStrictness = 100
)

// Overwhelming judges an error share measured during the warm-up. It fails
// only when the sequential test, at a hundred times the check's
// confidence, is sure the share is beyond WarmupFactor times the fail line;
// anything else passes, however high the share, because warm-up noise is
// not evidence against a release. Only upward rules (too many bad events)
// can fail this way.
func Overwhelming(obs, base Counts, minTotal float64, t Thresholds) Verdict {
	pass := none()
	pass.Status = Pass
	if !t.Fail.Op.Upward() {
		return pass
	}
	judgedBase := base.Ratio()
	if !(base.Total >= minTotal) {
		judgedBase = math.NaN()
	}
	line, ok, _ := t.failLine(judgedBase)
	if !ok || line >= 1 || !(line > 0) {
		// A line at 0% (a relative rule over a clean baseline) makes one
		// error "proof": that is warm-up noise, not a crash.
		return pass
	}
	strict := Thresholds{
		Fail:       Rule{Op: t.Fail.Op, Value: WarmupLine(line)},
		Confidence: t.stricter(WarmupStrictness).Confidence,
		Test:       Sequential,
	}
	v := Ratio(obs, Counts{}, minTotal, strict)
	if v.Status != Fail {
		pass.Value, pass.Samples = v.Value, v.Samples
		return pass
	}
	v.Baseline = base.Ratio()
	v.Reason = fmt.Sprintf("%s of %.0f requests during the warm-up, far beyond the %s line: more than %s (%gx the line) and %s sure",
		pct(v.Value), v.Samples, pct(line), pct(v.Line), float64(WarmupFactor), sure(v.Confidence))
	return v
}

// WarmupLine is the share the warm-up's test must prove exceeded for a
// fail line: WarmupFactor times it, at most halfway to 100%.
func WarmupLine(line float64) float64 {
	return math.Min(line*WarmupFactor, (1+line)/2)
}
