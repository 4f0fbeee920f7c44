package watch

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
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

// ComparisonSideBySide and ComparisonControl name, in a check's result,
// the comparison that decided its verdict when it was not the line and
// the pre-deploy baseline.
const (
	ComparisonSideBySide = "side_by_side"
	ComparisonControl    = "control"
)

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
	// missing is set once the output said a side could not be measured.
	missing bool
	// measured is set once prev holds a measurement. For a check that
	// counts from a fixed start, prev are the counts (or histograms) since
	// the deploy at the previous look, and strata (slices) what each side
	// counted between looks; for a sliding window, the window alone.
	measured             bool
	prevNew, prevOld     judge.Counts
	prevNewH, prevOldH   judge.Histogram
	strata               []judge.Stratum
	newSlices, oldSlices []judge.Histogram
}

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
	newSide, oldSide := w.deployVars(false), w.deployVars(true)
	newSide.Platform, oldSide.Platform = newVars, oldVars
	newSide.SinceDeploy, newSide.SinceWarmup = since, since
	oldSide.SinceDeploy, oldSide.SinceWarmup = since, since
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
	for _, c := range checks {
		l := looks[c]
		if l.err != nil {
			if !c.side.missing {
				c.side.missing = true
				w.note("%s: could not compare side by side at %s: %v", c.cfg.Name, at.Format(time.TimeOnly), l.err)
			}
			continue
		}
		verdict, old, judged := c.sideVerdict(l.m)
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
		v := newSide
		v.Window = c.window
		verdict, ctrl, shared := c.compareControl(ctx, w.source, w.spec.Metrics.Control, v, at, verdict)
		if verdict.Status != judge.Fail && !shared {
			continue
		}
		c.tracker.Observe(verdict.Status)
		c.record(verdict, v, at)
		c.result.Control, c.result.Comparison = judge.Num(old), ComparisonSideBySide
		if shared {
			c.result.Control, c.result.Comparison = ctrl, ComparisonControl
		}
		c.frozen = true
		breach := *c.result
		w.emit(Event{Kind: event.Breached, Check: &breach, Message: c.cfg.Name + ": " + verdict.Reason})
		if shared {
			return &inconclusive{reason: c.cfg.Name + ": " + verdict.Reason}
		}
		return &failure{reason: c.cfg.Name + ": " + verdict.Reason}
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
// (ov) as of at.
func (c *check) measureSides(ctx context.Context, src Querier, nv, ov config.Vars, at time.Time) (sideMeasure, error) {
	var m sideMeasure
	var errN, errO error
	if c.cfg.Type == config.TypeQuantile {
		m.newH, errN = c.histogram(ctx, src, nv, at)
		m.oldH, errO = c.histogram(ctx, src, ov, at)
	} else {
		m.newC, _, errN = c.counts(ctx, src, nv, at)
		m.oldC, _, errO = c.counts(ctx, src, ov, at)
	}
	if errN != nil {
		return m, errN
	}
	return m, errO
}

// sideVerdict adds a look's measurement to the check's strata and judges
// them; judged is false while there is nothing to compare yet (the first
// measurement of a check that counts from a fixed start only sets where
// its strata begin).
func (c *check) sideVerdict(m sideMeasure) (v judge.Verdict, old float64, judged bool) {
	s := &c.side
	th := c.th.AtLook(s.looks + 1)
	if !c.cfg.Accumulates() {
		// A sliding window is one stretch of time already.
		if c.cfg.Type == config.TypeQuantile {
			v, old = judge.SideBySideQuantile([]judge.Histogram{m.newH}, []judge.Histogram{m.oldH}, c.cfg.Quantile, c.cfg.MinRequests, th)
		} else {
			v, old = judge.SideBySide([]judge.Stratum{{New: m.newC, Old: m.oldC}}, c.cfg.MinRequests, th)
		}
		return v, old, v.Status != judge.NoData
	}
	first := !s.measured
	prevNew, prevOld, prevNewH, prevOldH := s.prevNew, s.prevOld, s.prevNewH, s.prevOldH
	s.measured, s.prevNew, s.prevOld, s.prevNewH, s.prevOldH = true, m.newC, m.oldC, m.newH, m.oldH
	if first {
		return v, old, false
	}
	if c.cfg.Type == config.TypeQuantile {
		s.newSlices = append(s.newSlices, judge.DiffHistograms(m.newH, prevNewH))
		s.oldSlices = append(s.oldSlices, judge.DiffHistograms(m.oldH, prevOldH))
		s.newSlices, s.oldSlices = judge.MergeSlices(s.newSlices, s.oldSlices, judge.MaxStrata)
		v, old = judge.SideBySideQuantile(s.newSlices, s.oldSlices, c.cfg.Quantile, c.cfg.MinRequests, th)
	} else {
		s.strata = append(s.strata, judge.Stratum{New: diffCounts(m.newC, prevNew), Old: diffCounts(m.oldC, prevOld)})
		s.strata = judge.MergeStrata(s.strata, judge.MaxStrata)
		v, old = judge.SideBySide(s.strata, c.cfg.MinRequests, th)
	}
	return v, old, v.Status != judge.NoData
}

// diffCounts is what was counted between two measurements of counts since
// a fixed start; counts that went down, as extrapolated counts can, are
// read as none.
func diffCounts(cur, prev judge.Counts) judge.Counts {
	total := max(cur.Total-prev.Total, 0)
	bad := min(max(cur.Bad-prev.Bad, 0), total)
	return judge.Counts{Bad: bad, Total: total}
}
