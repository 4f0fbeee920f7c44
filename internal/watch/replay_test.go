package watch

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/judge"
)

// TestAnalyzePastDeploys judges deploys that happened from the source's
// history: the verdict and the time the live watch would have reached,
// and nothing done to anything.
func TestAnalyzePastDeploys(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	deployAt := t0.Add(3 * time.Minute)
	now := deployAt.Add(5 * time.Minute)
	cases := []struct {
		name  string
		after profile
		until time.Time
		want  Verdict
	}{
		{name: "a bad release is found when a watch would have found it", after: profile{rps: 50, errRatio: 0.05, latency: 1}, want: Failed},
		{name: "a good release holds", after: good, want: Stable},
		{name: "until ends the monitor early", after: good, until: deployAt.Add(20 * time.Second), want: Stable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := newSim(1, t0, good, c.after, deployAt, 10*time.Minute)
			rep, err := Analyze(context.Background(), loadSpec(t, ""), src, Past{Version: "v2", PreviousVersion: "v1", DeployedAt: deployAt, Until: c.until}, now)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Verdict != c.want {
				t.Fatalf("verdict %s (%s), want %s", rep.Verdict, rep.Reason, c.want)
			}
			if rep.Deploy.StartedAt != deployAt || rep.Deploy.PreviousVersion != "v1" {
				t.Errorf("deploy %+v", rep.Deploy)
			}
			if c.want == Failed {
				// The same service watched live decides at the same time.
				live, _, _ := runScenario(t, scenario{before: good, after: c.after, seed: 1})
				d, liveD := rep.DetectedAt.Sub(deployAt), live.DetectedAt.Sub(live.Deploy.StartedAt)
				if d != liveD || rep.Reason != live.Reason {
					t.Errorf("analysis: %s after the deploy (%s); the live watch: %s (%s)", d, rep.Reason, liveD, live.Reason)
				}
				if rep.Rollback != nil && rep.Rollback.Performed {
					t.Errorf("an analysis rolled back: %+v", rep.Rollback)
				}
				if er := findCheck(t, rep, "error_rate"); er.Verdict != judge.Fail {
					t.Errorf("error_rate %s", er.Verdict)
				}
			}
			if !c.until.IsZero() && rep.Settings.Monitor != "15s" {
				t.Errorf("monitor %s, want the 15s left before until", rep.Settings.Monitor)
			}
		})
	}
	_, err := Analyze(context.Background(), loadSpec(t, ""), newSim(1, t0, good, good, deployAt, 10*time.Minute),
		Past{Version: "v2", DeployedAt: deployAt}, deployAt.Add(3*time.Second))
	if !errors.Is(err, ErrNotOver) {
		t.Errorf("a deploy still in its warm-up: err %v, want ErrNotOver", err)
	}
	// An until that leaves less than one look is refused, not "stable".
	for _, until := range []time.Time{deployAt.Add(6 * time.Second), deployAt.Add(3 * time.Second)} {
		_, err = Analyze(context.Background(), loadSpec(t, ""), newSim(1, t0, good, good, deployAt, 10*time.Minute),
			Past{Version: "v2", DeployedAt: deployAt, Until: until}, now)
		if !errors.Is(err, ErrTooShort) {
			t.Errorf("until %s after the deploy: err %v, want ErrTooShort", until.Sub(deployAt), err)
		}
	}
}
