package watch

import (
	"cmp"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
)

// rollingPlatform is a platform whose rollout takes a while and runs the
// old and the new version side by side meanwhile. Its pods are told apart
// by $pod_template_hash, which the simulator reads as the job: "api" for
// the new pods, "control" for the old ones.
type rollingPlatform struct {
	fakePlatform
	// blind gives both sides the same variables, as a platform whose
	// queries cannot tell the pods apart.
	blind bool
}

var (
	_ SideBySider = (*rollingPlatform)(nil)
	_ QueryVarser = (*rollingPlatform)(nil)
)

func (p *rollingPlatform) QueryVars(context.Context, Deploy, bool) map[string]string {
	return map[string]string{config.VarPodTemplateHash: "api"}
}

func (p *rollingPlatform) SideBySide(context.Context, Deploy) (newVars, oldVars map[string]string, ok bool) {
	if p.blind {
		return map[string]string{config.VarPodTemplateHash: "api"}, map[string]string{config.VarPodTemplateHash: "api"}, true
	}
	return map[string]string{config.VarPodTemplateHash: "api"}, map[string]string{config.VarPodTemplateHash: "control"}, true
}

func TestSideBySideDuringTheRollout(t *testing.T) {
	healthy := profile{rps: 30, errRatio: 0.001, latency: 1}
	bad := profile{rps: 30, errRatio: 0.05, latency: 1}
	cases := []struct {
		name      string
		new, old  profile // from the deploy on
		blind     bool
		control   bool
		outageAt  time.Duration // when set, both sides are healthy until then, bad after
		wantCheck string        // the check that decides, when not error_rate
		want      Verdict
		// wantPhase is the phase that failed, or "" when none did.
		wantPhase  string
		wantReason string
	}{
		{name: "errors on the new pods alone fail the rollout", new: bad, old: healthy,
			want: Failed, wantPhase: PhaseRollout, wantReason: "compared side by side"},
		{name: "an outage on both sides is not blamed during the rollout", new: bad, old: bad, control: true,
			want: Inconclusive, wantReason: "shared cause"},
		{name: "a healthy rollout passes", new: healthy, old: healthy, want: Stable},
		{name: "an outage on both sides halfway through is not blamed during the rollout", new: bad, old: bad, outageAt: 30 * time.Second,
			control: true, want: Inconclusive, wantReason: "shared cause"},
		{name: "a cold start on the new pods is not blamed", old: healthy,
			new: profile{rps: 30, errRatio: 0.001, latency: 1, coldErrRatio: 0.1, coldFor: 4 * time.Second}, want: Stable},
		{name: "slow new pods fail the rollout", new: profile{rps: 30, errRatio: 0.001, latency: 4}, old: healthy,
			wantCheck: "latency_p99", want: Failed, wantPhase: PhaseRollout, wantReason: "compared side by side"},
		{name: "queries that cannot tell the pods apart leave it to the monitor", new: bad, old: healthy, blind: true,
			want: Failed, wantPhase: PhaseMonitor, wantReason: "error_rate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := &fakeClock{now: t0.Add(3 * time.Minute)}
			changeAt := clock.Now().Add(c.outageAt) // the deploy, or the outage
			src := newSim(3, t0, healthy, c.new, changeAt, 10*time.Minute)
			src.control = newSim(4, t0, healthy, c.old, changeAt, 10*time.Minute)
			// The rollout takes 60 looks at the 1s interval.
			plat := &rollingPlatform{fakePlatform: fakePlatform{running: "v1", done: func(n int) bool { return n > 60 }}, blind: c.blind}
			spec := loadSpec(t, "")
			spec.Metrics.Selector = `job="$pod_template_hash"`
			spec.Phases.Interval = time.Second
			if c.control {
				spec.Metrics.Control = `job="control"`
			}
			var notes []string
			obs := ObserverFunc(func(e Event) {
				if e.Kind == event.Note {
					notes = append(notes, e.Message)
				}
			})
			rep := New(spec, src, plat, WithClock(clock), WithObserver(obs)).Run(context.Background(), Request{Version: "v2", RunDeploy: true})
			if rep.Verdict != c.want || !strings.Contains(rep.Reason, c.wantReason) {
				t.Fatalf("verdict %s (%s), want %s with %q\nnotes: %q", rep.Verdict, rep.Reason, c.want, c.wantReason, notes)
			}
			failedIn := ""
			for _, p := range rep.Phases {
				if p.Outcome == OutcomeFailed {
					failedIn = p.Name
				}
			}
			if failedIn != c.wantPhase {
				t.Errorf("failed in %q, want %q (phases %+v)", failedIn, c.wantPhase, rep.Phases)
			}
			ec := findCheck(t, rep, cmp.Or(c.wantCheck, "error_rate"))
			switch {
			case c.wantPhase == PhaseRollout:
				if ec.Verdict != judge.Fail || ec.Comparison != ComparisonSideBySide || ec.Control == nil || ec.Value == nil || *ec.Value <= 2**ec.Control {
					t.Errorf("%s %+v: want a side-by-side failure with the old pods' value", ec.Name, ec)
				}
				if !strings.HasPrefix(rep.Reason, ec.Name+": ") {
					t.Errorf("reason %q does not name %s", rep.Reason, ec.Name)
				}
				if d := rep.DetectedAt.Sub(rep.Deploy.StartedAt); d > 30*time.Second {
					t.Errorf("detected %s after the deploy, during a 60s rollout; want within 30s", d)
				}
				if len(plat.rollbacks) != 1 {
					t.Errorf("%d rollbacks", len(plat.rollbacks))
				}
			case c.blind:
				if ec.Comparison != "" || !containsPrefix(notes, "error_rate: its queries read the same series") {
					t.Errorf("comparison %q, notes %q: want the line to decide, and a note saying why", ec.Comparison, notes)
				}
			case c.control:
				if len(plat.rollbacks) != 0 || ec.Comparison != ComparisonControl {
					t.Errorf("%d rollbacks, comparison %q: want the control group to excuse it, no rollback", len(plat.rollbacks), ec.Comparison)
				}
			}
			if !c.blind && !containsPrefix(notes, "the old and the new pods serve side by side: comparing error_rate, latency_p99") {
				t.Errorf("notes %q do not say the pods were compared side by side", notes)
			}
		})
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// TestControlGroupDecidesEveryFailure: the control group (baseline.control)
// is consulted on every failure, not only the monitor's error share: a
// crash-level error share in the warm-up, a latency regression, a drop of
// traffic. What hits the control group as hard is a shared cause
// (inconclusive, nothing rolled back); what hits the new version alone,
// or harder, fails it; a monitor that ends before the control group could
// tell is inconclusive.
func TestControlGroupDecidesEveryFailure(t *testing.T) {
	healthy := profile{rps: 50, errRatio: 0.001, latency: 1}
	crash := profile{rps: 50, errRatio: 0.3, latency: 1}
	slow := profile{rps: 50, errRatio: 0.001, latency: 4}
	quiet := profile{rps: 4, errRatio: 0.001, latency: 1}
	cases := []struct {
		name       string
		new, ctl   profile
		ctlBefore  *profile // the control group before the deploy, when not healthy
		spec       func(*Spec)
		want       Verdict
		wantPhase  string // the phase that ended the watch
		wantCheck  string
		wantReason string
		// noComparison: the control group could not decide.
		noComparison bool
	}{
		{name: "a crash-level outage in both during the warm-up is a shared cause", new: crash, ctl: crash,
			want: Inconclusive, wantPhase: PhaseWarmup, wantCheck: "error_rate", wantReason: "shared cause"},
		{name: "a release worse than a control group a dependency also pushed over the line fails",
			new: profile{rps: 50, errRatio: 0.08, latency: 1}, ctl: profile{rps: 50, errRatio: 0.02, latency: 1},
			want: Failed, wantPhase: PhaseMonitor, wantCheck: "error_rate", wantReason: "significantly better"},
		{name: "a monitor that ends before the control group could tell is inconclusive",
			new: profile{rps: 50, errRatio: 0.03, latency: 1}, ctl: profile{rps: 2, errRatio: 0.012, latency: 1},
			ctlBefore: &profile{rps: 2, errRatio: 0.001, latency: 1},
			want:      Inconclusive, wantPhase: PhaseMonitor, wantCheck: "error_rate", wantReason: "before the control group could tell"},
		{name: "a crash-level release still fails in the warm-up", new: crash, ctl: healthy,
			want: Failed, wantPhase: PhaseWarmup, wantCheck: "error_rate", wantReason: "significantly better"},
		{name: "slow dependencies in both are a shared cause", new: slow, ctl: slow,
			want: Inconclusive, wantPhase: PhaseMonitor, wantCheck: "latency_p99", wantReason: "slower than"},
		{name: "a release slower than the control group fails", new: slow, ctl: healthy,
			want: Failed, wantPhase: PhaseMonitor, wantCheck: "latency_p99", wantReason: "significantly better"},
		{name: "traffic that falls on the control group too is a shared cause", new: quiet, ctl: quiet,
			want: Inconclusive, wantPhase: PhaseMonitor, wantCheck: "request_rate", wantReason: "shared cause upstream"},
		{name: "traffic that falls on the release alone fails it", new: quiet, ctl: healthy,
			want: Failed, wantPhase: PhaseMonitor, wantCheck: "request_rate", wantReason: "which held"},
		{name: "an absolute rate line is drawn on the control group's own size", new: profile{rps: 21, errRatio: 0.001, latency: 1},
			ctl: profile{rps: 95, errRatio: 0.001, latency: 1}, ctlBefore: &profile{rps: 200, errRatio: 0.001, latency: 1},
			spec: func(s *Spec) {
				for i := range s.Checks {
					if s.Checks[i].Name == "request_rate" {
						s.Checks[i].Fail.Rule = judge.MustParseRule("< 30")
					}
				}
			},
			want: Inconclusive, wantPhase: PhaseMonitor, wantCheck: "request_rate", wantReason: "shared cause upstream"},
		{name: "a control group too quiet to compare leaves it to the line", new: quiet, ctl: profile{rps: 1, errRatio: 0.001, latency: 1},
			ctlBefore: &profile{rps: 1, errRatio: 0.001, latency: 1},
			want:      Failed, wantPhase: PhaseMonitor, wantCheck: "request_rate", wantReason: "too quiet to compare", noComparison: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := &fakeClock{now: t0.Add(3 * time.Minute)}
			deployAt := clock.Now()
			src := newSim(5, t0, healthy, c.new, deployAt, 10*time.Minute)
			before := healthy
			if c.ctlBefore != nil {
				before = *c.ctlBefore
			}
			src.control = newSim(6, t0, before, c.ctl, deployAt, 10*time.Minute)
			plat := &fakePlatform{running: "v1"}
			spec := loadSpec(t, "")
			spec.Metrics.Control = `job="control"`
			if c.spec != nil {
				c.spec(&spec)
			}
			rep := New(spec, src, plat, WithClock(clock)).Run(context.Background(), Request{Version: "v2", RunDeploy: true})
			if rep.Verdict != c.want || !strings.Contains(rep.Reason, c.wantReason) || !strings.HasPrefix(rep.Reason, c.wantCheck+": ") {
				t.Fatalf("verdict %s (%s), want %s from %s with %q; %s", rep.Verdict, rep.Reason, c.want, c.wantCheck, c.wantReason, findCheck(t, rep, c.wantCheck).Reason)
			}
			last := rep.Phases[len(rep.Phases)-1]
			for _, p := range rep.Phases {
				if p.Outcome == OutcomeFailed || p.Outcome == OutcomeInconclusive {
					last = p
					break
				}
			}
			if last.Name != c.wantPhase {
				t.Errorf("ended in %s, want %s", last.Name, c.wantPhase)
			}
			if rolled := len(plat.rollbacks) > 0; rolled != (c.want == Failed) {
				t.Errorf("rolled back: %v", rolled)
			}
			ch := findCheck(t, rep, c.wantCheck)
			if c.noComparison {
				if ch.Comparison != "" {
					t.Errorf("%s: comparison %q, want none", ch.Name, ch.Comparison)
				}
				return
			}
			if ch.Comparison != ComparisonControl || ch.Control == nil {
				t.Errorf("%s: comparison %q control %v: want the control group's value", ch.Name, ch.Comparison, ch.Control)
			}
		})
	}
}

// TestSideStrataFromCumulativeCounts: the strata are what each side counted
// between looks, from counts since the deploy that Prometheus extrapolates:
// a dip and its recovery are not counted twice, and a look at which a side
// could not be measured leaves the next stretch to cover the gap, once.
func TestSideStrataFromCumulativeCounts(t *testing.T) {
	spec := loadSpec(t, "")
	c := newCheck(spec.Checks[0], 4*time.Second) // error_rate, counted since the warm-up
	at := t0
	looks := []struct{ newTotal, oldTotal float64 }{
		{100, 300},  // where the strata begin
		{1100, 900}, // +1000, +600
		{1090, 950}, // a dip on the new side: +0, +50
		{1100, 1000},
		// a look at which a side had no series is never passed on
		{1300, 1100},
	}
	for i, l := range looks {
		m := sideMeasure{newC: judge.Counts{Bad: l.newTotal / 100, Total: l.newTotal}, oldC: judge.Counts{Bad: 0, Total: l.oldTotal}}
		c.sideVerdict(m, at.Add(time.Duration(i)*time.Second))
	}
	var newTotal, oldTotal, newBad float64
	for _, s := range c.side.strata {
		newTotal += s.New.Total
		oldTotal += s.Old.Total
		newBad += s.New.Bad
	}
	if newTotal != 1200 || oldTotal != 800 || math.Abs(newBad-12) > 1e-9 {
		t.Errorf("strata sum to %v (%v bad) new and %v old requests; want 1200 (12), 800", newTotal, newBad, oldTotal)
	}
	if !c.side.since.Equal(at) {
		t.Errorf("strata begin at %s, want the first look", c.side.since)
	}
}

// TestUndecidedIsKeptAndCleared: a check left undecided by the control
// group stays undecided through looks that measure nothing (a metric
// source down at the monitor's last looks ends inconclusive, not stable),
// and is cleared by a look within the line (a release that recovers is
// stable).
func TestUndecidedIsKeptAndCleared(t *testing.T) {
	undecided := profile{rps: 50, errRatio: 0.03, latency: 1}
	// how is what changes between the watches below.
	type how struct {
		release       func(since time.Duration) profile
		downBeforeEnd time.Duration // the metric source down this long before the end
		monitor       time.Duration // phases.monitor, when not the default
		report        bool          // error_rate in mode: report
	}
	run := func(t *testing.T, h how) *Report {
		clock := &fakeClock{now: t0.Add(3 * time.Minute)}
		deployAt := clock.Now()
		src := generateSim(5, t0, deployAt, 10*time.Minute, func(at time.Time) profile {
			if at.Before(deployAt) {
				return good
			}
			return h.release(at.Sub(deployAt))
		})
		src.control = newSim(6, t0, good, profile{rps: 50, errRatio: 0.012, latency: 1}, deployAt, 10*time.Minute)
		spec := loadSpec(t, "")
		spec.Metrics.Control = `job="control"`
		if h.monitor > 0 {
			spec.Phases.Monitor = h.monitor
		}
		if h.report {
			spec.Checks[0].Mode = config.ModeReport
		}
		if h.downBeforeEnd > 0 {
			end := deployAt.Add(spec.Phases.Warmup + spec.Phases.Monitor)
			src.failAfter = end.Add(-h.downBeforeEnd)
		}
		return New(spec, src, &fakePlatform{running: "v1"}, WithClock(clock)).Run(context.Background(), Request{Version: "v2", RunDeploy: true})
	}
	always := func(time.Duration) profile { return undecided }
	if rep := run(t, how{release: always}); rep.Verdict != Inconclusive || !strings.Contains(rep.Reason, "before the control group could tell") {
		t.Fatalf("undecided to the end: %s (%s), want inconclusive", rep.Verdict, rep.Reason)
	}
	rep := run(t, how{release: always, downBeforeEnd: 500 * time.Millisecond})
	if rep.Verdict != Inconclusive || !strings.Contains(rep.Reason, "before the control group could tell") || !strings.Contains(rep.Reason, "not significantly better yet") {
		t.Errorf("the source down at the last looks: %s (%s), want inconclusive with the last decided look's reason", rep.Verdict, rep.Reason)
	}
	if r := findCheck(t, rep, "error_rate"); r.Verdict != judge.Error && r.Verdict != judge.NoData {
		t.Errorf("error_rate ended %s (%s): the source was not down at the last look", r.Verdict, r.Reason)
	}
	if rep := run(t, how{release: always, report: true}); rep.Verdict != Stable || !strings.Contains(rep.Reason, "would have been inconclusive") {
		t.Errorf("undecided in mode: report: %s (%s), want stable, saying it would have been inconclusive", rep.Verdict, rep.Reason)
	}
	recovers := func(since time.Duration) profile {
		if since < 20*time.Second {
			return undecided
		}
		return good
	}
	// Counted since the warm-up, its error share is still beyond the line
	// when a 40s monitor ends (not surely, so those looks only warn): it
	// stays undecided. It falls back under the line over a longer monitor.
	if rep := run(t, how{release: recovers}); rep.Verdict != Inconclusive {
		t.Errorf("a release still beyond the line at the end: %s (%s), want inconclusive", rep.Verdict, rep.Reason)
	}
	if rep := run(t, how{release: recovers, monitor: 3 * time.Minute}); rep.Verdict != Stable {
		t.Errorf("a release that recovers: %s (%s), want stable", rep.Verdict, rep.Reason)
	}
}
