package judge

import (
	"math/rand/v2"
	"testing"
)

func TestAgainstControl(t *testing.T) {
	th := errorRateThresholds()
	th.Test, th.Look = Sequential, 5
	cases := []struct {
		name      string
		obs, ctrl Counts
		want      ControlOutcome
	}{
		{"a clean control blames the release", Counts{Bad: 40, Total: 800}, Counts{Bad: 2, Total: 2400}, ControlBlames},
		{"an outage in both is a shared cause", Counts{Bad: 40, Total: 800}, Counts{Bad: 115, Total: 2400}, ControlShared},
		{"a control too quiet to compare says nothing", Counts{Bad: 40, Total: 800}, Counts{Bad: 0, Total: 5}, ControlNone},
		{"a control under the line with few requests excuses for now", Counts{Bad: 4, Total: 100}, Counts{Bad: 1, Total: 40}, ControlExcuses},
		{"a control over the line but twice as good is not a shared cause", Counts{Bad: 40, Total: 800}, Counts{Bad: 60, Total: 2400}, ControlExcuses},
		{"a control over the line on few bad events is not a shared cause yet", Counts{Bad: 10, Total: 200}, Counts{Bad: 20, Total: 400}, ControlExcuses},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, reason := AgainstControl(c.obs, c.ctrl, 20, 0.01, "", th)
			if got != c.want {
				t.Errorf("outcome %d, want %d (%s)", got, c.want, reason)
			}
		})
	}
}

// TestControlRarelyBlamesASharedCause simulates watches of a release
// whose error share fails its 1% line, looked at every second for 40s at
// 50 requests per second on each side, with a control group: a shared
// outage must almost never be blamed on the release (that is a rollback
// for a dependency's fault), and a release worse than its control group
// must be blamed, also when the control group is over the line too; one
// twice as bad as a control group over the line is rarely called a shared
// cause (it is mostly left undecided: inconclusive, not rolled back).
func TestControlRarelyBlamesASharedCause(t *testing.T) {
	const watches, looks, rps = 5000, 40, 50
	type tally struct{ blamed, shared int }
	simulate := func(release, control float64) tally {
		rng := rand.New(rand.NewPCG(3, 5))
		th := errorRateThresholds()
		th.Test = Sequential
		var out tally
		for range watches {
			var obs, ctl Counts
			for k := 1; k <= looks; k++ {
				for range rps {
					obs.Total++
					ctl.Total++
					if rng.Float64() < release {
						obs.Bad++
					}
					if rng.Float64() < control {
						ctl.Bad++
					}
				}
				th.Look = k
				if v := Ratio(obs, Counts{Bad: 1, Total: 1000}, 20, th); v.Status != Fail {
					continue
				}
				outcome, _ := AgainstControl(obs, ctl, 20, 0.01, "", th)
				if outcome == ControlBlames {
					out.blamed++
					break
				}
				if outcome == ControlShared {
					out.shared++
					break
				}
			}
		}
		return out
	}
	cases := []struct {
		name             string
		release, control float64
		// the shares of watches blamed and called a shared cause
		minBlamed, maxBlamed float64
		shared, maxShared    float64
	}{
		{name: "8% on both: a shared outage", release: 0.08, control: 0.08, maxBlamed: 0, shared: 0.99, maxShared: 1},
		{name: "3% on both: a shared outage", release: 0.03, control: 0.03, maxBlamed: 0.001, shared: 0.9, maxShared: 1},
		{name: "8% against a control over the line at 2%", release: 0.08, control: 0.02, maxBlamed: 1, minBlamed: 0.99, maxShared: 0.01},
		{name: "8% against a control over the line at 4%", release: 0.08, control: 0.04, maxBlamed: 1, maxShared: 0.05},
		{name: "5% against a control over the line at 2.5%", release: 0.05, control: 0.025, maxBlamed: 1, maxShared: 0.05},
		{name: "8% against a clean control", release: 0.08, control: 0.001, maxBlamed: 1, minBlamed: 0.99, maxShared: 0},
		{name: "3% against a clean control", release: 0.03, control: 0.001, maxBlamed: 1, minBlamed: 0.99, maxShared: 0},
	}
	for _, c := range cases {
		got := simulate(c.release, c.control)
		blamed, shared := float64(got.blamed)/watches, float64(got.shared)/watches
		t.Logf("%s: %.2f%% blamed, %.2f%% a shared cause, the rest undecided", c.name, 100*blamed, 100*shared)
		if blamed > c.maxBlamed || blamed < c.minBlamed || shared < c.shared || shared > c.maxShared {
			t.Errorf("%s: %.2f%% blamed (want %.1f%% to %.1f%%), %.2f%% a shared cause (want %.0f%% to %.0f%%)",
				c.name, 100*blamed, 100*c.minBlamed, 100*c.maxBlamed, 100*shared, 100*c.shared, 100*c.maxShared)
		}
	}
}
