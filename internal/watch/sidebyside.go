package watch

import (
	"context"
	"strings"
	"sync"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
)

// The rollout's side-by-side comparison. While a rolling update runs, the
// old version's pods and the new one's serve at the same time: every
// error share is counted on each side over the same time since the deploy
// began, and the release fails as soon as its pods are beyond the line and
// significantly worse than the old ones (judge.SideBySide). The time of
// day and a dependency that fails hit both sides alike and cancel out. The
// control group (baseline.control), when there is one, has the last word
// as it has on every failure.

// ComparisonSideBySide and ComparisonControl name, in a check's result,
// the comparison that decided its verdict when it was not the line and
// the pre-deploy baseline.
const (
	ComparisonSideBySide = "side_by_side"
	ComparisonControl    = "control"
)

// sideChecks are the checks compared side by side: error shares with an
// upward line whose queries tell the old pods from the new.
func (w *run) sideChecks() []*check {
	var out []*check
	for _, c := range w.checks {
		if c.cfg.Type == config.TypeRatio && c.cfg.Fail.Op.Upward() && c.enforced() && !c.frozen && !c.sideBlind {
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

	type look struct {
		verdict judge.Verdict
		old     float64
		blind   bool
	}
	looks := make(map[*check]look, len(checks))
	var mu sync.Mutex
	w.parallelOver(ctx, checks, func(ctx context.Context, c *check) {
		nv, ov := newSide, oldSide
		nv.Window, ov.Window = c.window, c.window
		var l look
		if qn, err := c.expr("total", nv); err == nil {
			qo, _ := c.expr("total", ov)
			l.blind = qn == qo
		}
		if !l.blind {
			newC, okNew, errNew := c.counts(ctx, w.source, nv, at)
			oldC, okOld, errOld := c.counts(ctx, w.source, ov, at)
			if errNew != nil || errOld != nil || !okNew || !okOld {
				return // nothing to compare at this look; the monitor will measure
			}
			l.verdict, l.old = judge.SideBySide(newC, oldC, c.cfg.MinRequests, c.th.AtLook(c.sideLooks+1))
		}
		mu.Lock()
		looks[c] = l
		mu.Unlock()
	})
	if ctx.Err() != nil {
		return errStopped
	}
	if !w.sideBySideNoted {
		var names []string
		for _, c := range checks {
			if l, ok := looks[c]; ok && !l.blind {
				names = append(names, c.cfg.Name)
			}
		}
		if len(names) > 0 {
			w.sideBySideNoted = true
			w.note("the old and the new pods serve side by side: comparing %s on each over the same time", strings.Join(names, ", "))
		}
	}
	for _, c := range checks {
		l, ok := looks[c]
		switch {
		case !ok:
			continue
		case l.blind:
			c.sideBlind = true
			w.note("%s: its queries read the same series for the old pods as for the new (the selector names neither $pods nor $pod_template_hash): not compared side by side", c.cfg.Name)
			continue
		case l.verdict.Status == judge.NoData:
			continue
		}
		c.sideLooks++
		if l.verdict.Status != judge.Fail {
			if l.verdict.Status != c.sideStatus {
				w.note("%s, side by side: %s", c.cfg.Name, l.verdict.Reason)
			}
			c.sideStatus = l.verdict.Status
			continue
		}
		v := newSide
		v.Window = c.window
		verdict, _, shared := c.compareControl(ctx, w.source, w.spec.Metrics.Control, v, at, l.verdict)
		if verdict.Status != judge.Fail && !shared {
			continue
		}
		c.tracker.Observe(verdict.Status)
		c.record(verdict, v, at)
		c.result.Control, c.result.Comparison = judge.Num(l.old), ComparisonSideBySide
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
