package judge

import "fmt"

// A before/after comparison cannot tell a bad release from a dependency
// that failed in the same minute. A control group (instances the deploy
// did not change, measured over the same time) can: what hits both is not
// the release's doing.

// ControlOutcome is what a comparison with the control group decided.
type ControlOutcome int

const (
	// ControlNone: the control group had too little traffic to compare.
	ControlNone ControlOutcome = iota
	// ControlBlames: the new version is significantly worse than the
	// control group by more than the tolerance: the release is at fault.
	ControlBlames
	// ControlShared: the control group is significantly beyond the line
	// too, and the new version is not significantly worse than it: a
	// shared cause.
	ControlShared
	// ControlExcuses: the new version is not significantly worse than a
	// control group that is not shown beyond the line (too little evidence
	// either way, yet).
	ControlExcuses
)

// AgainstControl compares a failing share of bad requests (errors, or
// requests slower than a latency line) with the control group's over the
// same time, by the exact conditional test of two rates (of all bad
// events in both groups, under "the new rate is (1+tolerance) times the
// control's" the new group's share is binomial), at this look's level.
// line is the share the control group is tested against for a shared
// cause; what says what a bad request is in the reason ("" for errors, "
// slower than 200ms"). The reason says what the control group showed.
func AgainstControl(obs, ctrl Counts, minTotal, line float64, what string, t Thresholds) (ControlOutcome, string) {
	if !(ctrl.Total >= minTotal) {
		return ControlNone, fmt.Sprintf("the control group counted %.0f requests, too few to compare", max(ctrl.Total, 0))
	}
	ctrlBad := ctrl.bad()
	seen := fmt.Sprintf("the control group: %s of %.0f requests%s over the same time", pct(ctrlBad/ctrl.Total), ctrl.Total, what)
	if worseThanP(obs.bad(), obs.Total, ctrlBad, ctrl.Total, 1+t.Tolerance) <= t.fixedLevel() {
		return ControlBlames, seen + ", significantly better"
	}
	if binomialAtLeast(ctrlBad, ctrl.Total, line) <= t.alpha() {
		return ControlShared, seen + ": beyond the line too, so a shared cause (a dependency, the traffic), not this release"
	}
	return ControlExcuses, seen + ": not significantly better yet"
}
