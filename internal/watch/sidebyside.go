package watch

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/judge"
)

// The rollout's side-by-side comparison. While a rolling update runs, the
// old version's pods and the new one's serve at the same time: every
// error share and latency quantile is measured on each side, stretch of
// time by stretch of time between looks, and the release fails as soon as
// its pods are beyond the line and significantly worse than the old ones
// (judge.SideBySide, judge.SideBySideQuantile). The time of day and a
// dependency that fails hit both sides alike and cancel out. The new pods
// get the warm-up's grace: counting begins phases.warmup after both sides
// first served. The control group (baseline.control), when there is one,
// has the last word as it has on every failure.

// sideState is a check's side-by-side comparison during the rollout.
type sideState struct {
	// looks counts the looks that compared, over which the test spends its
	// confidence (saved with the watch).
	looks int
	// status is the latest outcome, so that the output says when it
	// changes.
	status judge.Status
	// blind is set when the check's queries read the same series for the
	// old pods as for the new: it cannot be compared side by side.
	blind bool
	// missing counts the looks in a row at which a side could not be
	// measured.
	missing int
	// measured is set once prev holds a measurement, taken at since. For a
	// check that counts from a fixed start, prev are the highest counts
	// (or histograms) since the deploy seen so far, and strata (slices)
	// what each side counted between looks; a sliding window is judged on
	// the window alone.
	measured             bool
	since                time.Time
	prevNew, prevOld     judge.Counts
	prevNewH, prevOldH   judge.Histogram
	strata               []judge.Stratum
	newSlices, oldSlices []judge.Histogram
}

// missingLooks is how many looks in a row a side may be unmeasurable
// before the output says so.
const missingLooks = 5

// sideMeasure is one look's measurement of both sides, cumulative for a
// check that counts from a fixed start.
type sideMeasure struct {
	newC, oldC judge.Counts
	newH, oldH judge.Histogram
}

// sideChecks are the checks compared side by side: error shares and
// latency quantiles with an upward line whose queries tell the old pods
// from the new.
func (w *run) sideChecks() []*check {
	var out []*check
	for _, c := range w.checks {
		counted := c.cfg.Type == config.TypeRatio || c.cfg.Type == config.TypeQuantile
		if counted && c.cfg.Fail.Op.Upward() && c.enforced() && !c.frozen && !c.side.blind {
			out = append(out, c)
		}
	}
	return out
}

// lookSideBySide compares the new pods with the old ones, once, when the
// platform runs both; it returns a failure (or an inconclusive end, for a
// shared cause the control group shows) when the comparison decides.
func (w *run) lookSideBySide(ctx context.Context) error {
	sb, ok := w.platform.(SideBySider)
	if !ok {
		return nil
	}
	checks := w.sideChecks()
	at := w.clock.Now()
	since := at.Sub(w.deploy.StartedAt)
	if len(checks) == 0 || since < 2*w.scrape {
		return nil // increase() needs two scrapes in its range
	}
	pctx, cancel := w.platformContext(ctx)
	newVars, oldVars, both := sb.SideBySide(pctx, w.deploy)
	cancel()
	if !both {
		return nil
	}
	side := func(baseline bool, platform map[string]string) config.Vars {
		v := w.deployVars(baseline)
		v.Platform, v.SinceDeploy, v.SinceWarmup = platform, since, since
		return v
	}
	newSide, oldSide := side(false, newVars), side(true, oldVars)
	for _, c := range checks {
		if c.sideBlind(newSide, oldSide) {
			c.side.blind = true
			w.note("%s: its queries read the same series for the old pods as for the new (they name neither $pods nor $pod_template_hash): not compared side by side", c.cfg.Name)
		}
	}
	if checks = w.sideChecks(); len(checks) == 0 {
		return nil
	}
	if w.sideFrom.IsZero() {
		w.sideFrom = at.Add(w.spec.Phases.Warmup)
		var names []string
		for _, c := range checks {
			names = append(names, c.cfg.Name)
		}
		w.note("the old and the new pods serve side by side: comparing %s on each from %s on (after the %s warm-up)",
			strings.Join(names, ", "), w.sideFrom.Format(time.TimeOnly), config.FormatDuration(w.spec.Phases.Warmup))
		_ = w.save() // a resumed watch does not wait for another warm-up
	}
	if at.Before(w.sideFrom) {
		return nil
	}

	type look struct {
		m   sideMeasure
		err error
	}
	looks := make(map[*check]look, len(checks))
	var mu sync.Mutex
	w.parallelOver(ctx, checks, func(ctx context.Context, c *check) {
		nv, ov := newSide, oldSide
		nv.Window, ov.Window = c.window, c.window
		var l look
		l.m, l.err = c.measureSides(ctx, w.source, nv, ov, at)
		mu.Lock()
		looks[c] = l
		mu.Unlock()
	})
	if ctx.Err() != nil {
		return errStopped
	}
	// The looks counted, over which the comparison spends its confidence,
	// are saved with the watch.
	defer func() { _ = w.save() }()
	for _, c := range checks {
		l := looks[c]
		if l.err != nil {
			// New pods take a few scrapes to show up: say so only when a
			// side stays unmeasurable.
			if c.side.missing++; c.side.missing == missingLooks {
				w.note("%s: could not compare side by side for %d looks in a row: %v", c.cfg.Name, missingLooks, l.err)
			}
			continue
		}
		c.side.missing = 0
		verdict, old, judged := c.sideVerdict(l.m, at)
		if !judged {
			continue
		}
		c.side.looks++
		if verdict.Status != judge.Fail {
			if verdict.Status != c.side.status && verdict.Status != judge.NoData {
				w.note("%s, side by side: %s", c.cfg.Name, verdict.Reason)
			}
			c.side.status = verdict.Status
			continue
		}
		// The control group over the time the sides were compared.
		v := newSide
		v.Window = c.window
		if c.cfg.Accumulates() {
			v.SinceDeploy, v.SinceWarmup = at.Sub(c.side.since), at.Sub(c.side.since)
		}
		verdict, byControl, outcome := c.compareControl(ctx, w.source, w.spec.Metrics.Control, v, at, verdict)
		if outcome == judge.ControlExcuses {
			continue // undecided: the monitor will judge
		}
		cmp := comparedWith{by: ComparisonSideBySide, value: judge.Num(old)}
		if outcome == judge.ControlShared {
			cmp = byControl
		}
		return w.endOn(c, verdict, cmp, v, at, outcome)
	}
	return nil
}

// sideBlind reports whether the check's queries read the same series for
// both sides (any one of them).
func (c *check) sideBlind(nv, ov config.Vars) bool {
	roles := []string{"bad", "total"}
	if c.cfg.Type == config.TypeQuantile {
		roles = []string{"histogram"}
	}
	for _, role := range roles {
		qn, errN := c.expr(role, nv)
		qo, errO := c.expr(role, ov)
		if errN == nil && errO == nil && qn == qo {
			return true
		}
	}
	return false
}

// measureSides measures the check on the new pods (nv) and the old ones
// (ov) as of at. A side without series, or with counts that are not
// finite numbers, is an error: such a look is not a stretch of time with
// nothing counted.
func (c *check) measureSides(ctx context.Context, src Querier, nv, ov config.Vars, at time.Time) (sideMeasure, error) {
	var m sideMeasure
	sides := []struct {
		name string
		v    config.Vars
		c    *judge.Counts
		h    *judge.Histogram
	}{{"new", nv, &m.newC, &m.newH}, {"old", ov, &m.oldC, &m.oldH}}
	for _, side := range sides {
		if c.cfg.Type == config.TypeQuantile {
			h, err := c.histogram(ctx, src, side.v, at)
			switch {
			case err != nil:
				return m, fmt.Errorf("the %s pods: %w", side.name, err)
			case len(h) == 0 || math.IsInf(h.Count(), 0) || math.IsNaN(h.Count()):
				return m, fmt.Errorf("the %s pods: no histogram", side.name)
			}
			*side.h = h
			continue
		}
		counts, ok, err := c.counts(ctx, src, side.v, at)
		switch {
		case err != nil:
			return m, fmt.Errorf("the %s pods: %w", side.name, err)
		case !ok:
			return m, fmt.Errorf("the %s pods: no series", side.name)
		case !isFinite(counts.Total) || !isFinite(counts.Bad):
			return m, fmt.Errorf("the %s pods: counts %v of %v are not numbers", side.name, counts.Bad, counts.Total)
		}
		*side.c = counts
	}
	return m, nil
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// sideVerdict adds a look's measurement to the check's strata and judges
// them; judged is false while there is nothing to compare yet (the first
// measurement of a check that counts from a fixed start only sets where
// its strata begin, at s.since).
func (c *check) sideVerdict(m sideMeasure, at time.Time) (v judge.Verdict, old float64, judged bool) {
	s := &c.side
	// Counts that accumulate are judged by tests valid at every look; a
	// sliding window, one stretch of time already, spends its confidence
	// over the looks (whatever failure_limit says: the comparison has no
	// failure limit).
	th := c.th.AtLook(s.looks + 1)
	th.Test = judge.Sequential
	strata := []judge.Stratum{{New: m.newC, Old: m.oldC}}
	newSlices, oldSlices := []judge.Histogram{m.newH}, []judge.Histogram{m.oldH}
	switch {
	case !c.cfg.Accumulates():
		th.Test = judge.Spent
	case !s.measured:
		s.measured, s.since = true, at
		s.prevNew, s.prevOld, s.prevNewH, s.prevOldH = m.newC, m.oldC, m.newH, m.oldH
		return v, old, false
	default:
		// What was counted since the previous look. The previous counts
		// are a high-water mark: extrapolated counts that dip and come
		// back are not counted twice.
		if c.cfg.Type == config.TypeQuantile {
			s.newSlices = append(s.newSlices, judge.DiffHistograms(m.newH, s.prevNewH))
			s.oldSlices = append(s.oldSlices, judge.DiffHistograms(m.oldH, s.prevOldH))
			s.prevNewH, s.prevOldH = judge.MaxHistograms(s.prevNewH, m.newH), judge.MaxHistograms(s.prevOldH, m.oldH)
		} else {
			s.strata = append(s.strata, judge.Stratum{New: m.newC.Since(s.prevNew), Old: m.oldC.Since(s.prevOld)})
			s.prevNew, s.prevOld = s.prevNew.HighWater(m.newC), s.prevOld.HighWater(m.oldC)
		}
		strata, newSlices, oldSlices = s.strata, s.newSlices, s.oldSlices
	}
	if c.cfg.Type == config.TypeQuantile {
		v, old = judge.SideBySideQuantile(newSlices, oldSlices, c.base.hist, c.cfg.Quantile, c.cfg.MinRequests, th)
	} else {
		v, old = judge.SideBySide(strata, c.cfg.MinRequests, th)
	}
	return v, old, v.Status != judge.NoData
}
