package watch

import (
	"context"
	"fmt"
	"strings"

	"github.com/deploywatch/deploywatch/internal/judge"
)

// stable closes the timeline of a deploy that held: the phase's reason,
// with the warnings and whatever could not be judged, becomes the
// verdict's.
func (w *run) stable(context.Context) (ended, error) {
	var warned, blind, gaveUp, wouldFail, wouldBeUndecided []string
	for _, c := range w.checks {
		switch {
		case !c.enforced() && c.tracker.Failed():
			wouldFail = append(wouldFail, fmt.Sprintf("%s (%s)", c.cfg.Name, c.result.Reason))
		case !c.enforced() && c.undecided != "":
			wouldBeUndecided = append(wouldBeUndecided, fmt.Sprintf("%s (%s)", c.cfg.Name, c.undecided))
		case c.tracker.GaveUp():
			gaveUp = append(gaveUp, c.cfg.Name)
		case !c.tracker.Judged():
			blind = append(blind, fmt.Sprintf("%s (%s)", c.cfg.Name, c.result.Reason))
		case c.result.Verdict == judge.Warn || c.result.Verdict == judge.Fail:
			warned = append(warned, c.cfg.Name)
		}
	}
	parts := []string{"every check held through the monitor window"}
	if len(w.checks) == 0 {
		parts = []string{"the rollout completed (no metric checks configured)"}
		if w.pods != nil {
			parts = []string{"the rollout completed and the pods stayed healthy through the monitor window (no metric checks configured)"}
		}
	}
	if len(wouldFail) > 0 {
		parts = append(parts, "would have failed (mode: report): "+strings.Join(wouldFail, "; "))
	}
	if len(wouldBeUndecided) > 0 {
		parts = append(parts, "would have been inconclusive, the control group undecided (mode: report): "+strings.Join(wouldBeUndecided, "; "))
	}
	if len(warned) > 0 {
		parts = append(parts, "warnings: "+strings.Join(warned, ", "))
	}
	if len(blind) > 0 {
		parts = append(parts, "could not judge: "+strings.Join(blind, "; "))
	}
	if len(gaveUp) > 0 {
		parts = append(parts, "gave up on: "+strings.Join(gaveUp, ", "))
	}
	return passed("%s", strings.Join(parts, "; ")), nil
}
