package judge

import "testing"

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
