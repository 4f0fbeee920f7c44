package judge

import "testing"

func TestOverwhelming(t *testing.T) {
	cases := []struct {
		name     string
		obs      Counts
		base     Counts
		want     Status
		rule     string
		lineWant float64
	}{
		{name: "crash-level errors after two seconds at 50 req/s fail", obs: Counts{Bad: 30, Total: 100}, want: Fail, lineWant: 0.05},
		{name: "every request failing fails on 20 requests", obs: Counts{Bad: 20, Total: 20}, want: Fail, lineWant: 0.05},
		{name: "cold-start errors at 5% pass", obs: Counts{Bad: 12, Total: 250}, want: Pass},
		{name: "10% errors, beyond the line but not crash-level, pass", obs: Counts{Bad: 10, Total: 100}, want: Pass},
		{name: "a few requests all failing prove nothing", obs: Counts{Bad: 5, Total: 5}, want: Pass},
		{name: "a breaching baseline moves the line", obs: Counts{Bad: 30, Total: 100}, base: Counts{Bad: 600, Total: 6000}, want: Pass},
		{name: "a downward rule never fails in the warm-up", obs: Counts{Bad: 0, Total: 1000}, rule: "< 99%", want: Pass},
		{name: "a line near 100% is capped halfway", obs: Counts{Bad: 99, Total: 100}, rule: "> 50%", want: Fail, lineWant: 0.75},
		{name: "a relative line over a clean baseline is 0%: one error is no crash", obs: Counts{Bad: 1, Total: 200}, base: Counts{Bad: 0, Total: 5000}, rule: "> 2x baseline", want: Pass},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			th := errorRateThresholds()
			if c.rule != "" {
				th.Fail = MustParseRule(c.rule)
			}
			v := Overwhelming(c.obs, c.base, 20, th)
			if v.Status != c.want {
				t.Fatalf("status %s, want %s (%s)", v.Status, c.want, v.Reason)
			}
			if c.want == Fail && (v.Line != c.lineWant || v.Confidence < 0.9999) {
				t.Errorf("line %g confidence %g, want line %g at >= 99.99%%: %s", v.Line, v.Confidence, c.lineWant, v.Reason)
			}
		})
	}
}
