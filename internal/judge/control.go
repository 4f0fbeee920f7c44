package judge

import "fmt"

// A before/after comparison cannot tell a bad release from a dependency
// that failed in the same minute. A control group (instances the deploy
// did not change, measured over the same time) can: what hits both is not
// the release's doing.

// ControlStrictness is how much surer than the check's confidence the
// comparison with the control group must be to blame the release. It
// decides between a rollback and none when a dependency may have failed
// with the deploy, so a shared outage is rarely rolled back: of 5,000
// simulated watches in a shared 8% outage, none was (3 at the check's
// own confidence; real counts scatter more than the simulation's).
const ControlStrictness = 10

// MinSharedEvents is how many bad events the control group must count
// before its share is set beside the release's for a shared cause: on
// fewer, a release twice as bad as the control group reads as bad as it
// too often (a quarter of simulated watches on 5 to 20 bad events).
const MinSharedEvents = 30

// ControlOutcome is what a comparison with the control group decided.
type ControlOutcome int

const (
	// ControlNone: no comparison was made (the control group had too
	// little traffic, could not be measured, or the verdict was not a
	// statistical failure): the line decides.
	ControlNone ControlOutcome = iota
	// ControlBlames: the new version is significantly worse than the
	// control group by more than the tolerance: the release is at fault.
	ControlBlames
	// ControlShared: the control group is significantly beyond the line
	// too, and the new version is no worse than it (by the tolerance): a
	// shared cause.
	ControlShared
	// ControlExcuses: neither yet. The new version is not significantly
	// worse than the control group, and the control group is not shown
	// beyond the line, or the new version looks worse than it, or the
	// control group counted fewer than MinSharedEvents bad events. A
	// watch that ends so is inconclusive.
	ControlExcuses
)

// AgainstControl compares a failing share of bad requests (errors, or
// requests slower than a latency line) with the control group's over the
// same time, by the exact conditional test of two rates (of all bad
// events in both groups, under "the new rate is (1+tolerance) times the
// control's" the new group's share is binomial), at the level of this
// comparison (t.Look counts them) made ControlStrictness times stricter.
// A shared cause takes all three: the control group shown beyond the line
// (at the check's own level, spent over the comparisons), the new
// version's share no more than (1+tolerance) times the control group's,
// and that share counted on MinSharedEvents bad events. Not being shown
// worse is not enough: a release four times worse than a control group
// that a dependency pushed over the line too would be excused half the
// time.
//
// line is the share the control group is tested against for a shared
// cause; what says what a bad request is in the reason ("" for errors, "
// slower than 200ms"). The reason says what the control group showed.
func AgainstControl(obs, ctrl Counts, minTotal, line float64, what string, t Thresholds) (ControlOutcome, string) {
	if !(ctrl.Total >= minTotal) {
		return ControlNone, fmt.Sprintf("the control group counted %.0f requests, too few to compare", max(ctrl.Total, 0))
	}
	ctrlBad := ctrl.bad()
	seen := fmt.Sprintf("the control group: %s of %.0f requests%s over the same time", pct(ctrlBad/ctrl.Total), ctrl.Total, what)
	if worseThanP(obs.bad(), obs.Total, ctrlBad, ctrl.Total, 1+t.Tolerance) <= t.stricter(ControlStrictness).fixedLevel() {
		return ControlBlames, seen + ", significantly better"
	}
	if binomialAtLeast(ctrlBad, ctrl.Total, line) > t.fixedLevel() {
		return ControlExcuses, seen + ": not significantly better yet"
	}
	if obs.bad()/obs.Total > (1+t.Tolerance)*ctrlBad/ctrl.Total {
		return ControlExcuses, seen + ": beyond the line too, but better than the release so far, not significantly"
	}
	if ctrlBad < MinSharedEvents {
		return ControlExcuses, fmt.Sprintf("%s: beyond the line too, but on %.0f bad requests, too few to set beside the release's yet (%d needed)", seen, ctrlBad, MinSharedEvents)
	}
	return ControlShared, seen + ": beyond the line too, so a shared cause (a dependency, the traffic), not this release"
}
