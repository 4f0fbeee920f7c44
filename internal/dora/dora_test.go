package dora

import (
	"math"
	"slices"
	"testing"
	"time"
)

func at(day, hour, min, sec int) time.Time {
	return time.Date(2026, 11, day, hour, min, sec, 0, time.UTC)
}

func ptr(t time.Time) *time.Time { return &t }

// history is a fortnight of a service, with its figures worked out by
// hand in TestKnownHistory.
func history() []Deploy {
	return []Deploy{
		{ID: "d1", Version: "v1", PreviousVersion: "v0", Verdict: stable, StartedAt: at(2, 10, 0, 0), EndedAt: at(2, 10, 10, 0), CommitTime: ptr(at(2, 8, 0, 0))},
		{ID: "d2", Version: "v2", PreviousVersion: "v1", Verdict: failed, RolledBack: true, StartedAt: at(3, 12, 0, 0), DetectedAt: ptr(at(3, 12, 0, 9)), EndedAt: at(3, 12, 1, 0)},
		{ID: "d3", Version: "v2b", PreviousVersion: "v1", Verdict: stable, StartedAt: at(3, 15, 0, 0), EndedAt: at(3, 15, 10, 0), CommitTime: ptr(at(3, 9, 0, 0))},
		{ID: "d4", Version: "v3", PreviousVersion: "v2b", Verdict: failed, RolledBack: true, StartedAt: at(10, 9, 0, 0), DetectedAt: ptr(at(10, 9, 0, 30)), EndedAt: at(10, 9, 2, 0)},
		{ID: "d5", Version: "v3", PreviousVersion: "v2b", Verdict: stable, StartedAt: at(10, 11, 0, 0), EndedAt: at(10, 11, 10, 0)},
		{ID: "d6", Version: "v4", PreviousVersion: "v3", Verdict: stable, StartedAt: at(11, 10, 0, 0), EndedAt: at(11, 10, 10, 0)},
		{ID: "d7", Version: "v3", PreviousVersion: "v4", Verdict: stable, StartedAt: at(11, 14, 0, 0), EndedAt: at(11, 14, 10, 0)},
		{ID: "d8", Version: "v5", PreviousVersion: "v3", Verdict: inconclusive, StartedAt: at(12, 10, 0, 0), EndedAt: at(12, 10, 20, 0)},
		{ID: "d9", Version: "v6", PreviousVersion: "v3", Verdict: stable, StartedAt: at(13, 10, 0, 0), EndedAt: at(13, 10, 10, 0),
			Labels: []Label{{Name: "incident", At: at(13, 18, 0, 0)}}},
		// Outside the window, and one still in progress: not counted.
		{ID: "old", Version: "v0", Verdict: stable, StartedAt: at(1, 10, 0, 0), EndedAt: at(1, 10, 10, 0)},
		{ID: "running", Version: "v7", Verdict: "in_progress", StartedAt: at(14, 10, 0, 0)},
	}
}

func TestKnownHistory(t *testing.T) {
	r := Compute(history(), Options{From: at(2, 0, 0, 0), To: at(16, 0, 0, 0)})
	near := func(name string, got, want float64) {
		t.Helper()
		if math.IsNaN(want) != math.IsNaN(got) || !math.IsNaN(want) && math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if r.Deploys != 9 {
		t.Fatalf("%d deploys in the window, want 9", r.Deploys)
	}
	// 9 deploys in 14 days.
	near("frequency", r.Frequency.Value, 9.0/14)
	// Commit to end: d1 2h10m, d3 6h10m: median 4h10m.
	near("lead time", r.LeadTime.Value, 15000)
	// 2 failed of 8 judged (6 stable, 2 failed; the inconclusive one is not).
	near("change failure rate", r.ChangeFailureRate.Value, 0.25)
	// d2 detected 12:00:09, next stable ended 15:10:00: 11391s; d4 detected
	// 09:00:30, next stable ended 11:10:00: 7770s.
	near("recovery time", r.RecoveryTime.Value, (11391+7770)/2.0)
	bands := []string{r.Frequency.Band, r.LeadTime.Band, r.ChangeFailureRate.Band, r.RecoveryTime.Band}
	if !slices.Equal(bands, []string{"high", "elite", "high", "high"}) {
		t.Errorf("bands %v", bands)
	}
	if len(r.Weeks) != 2 {
		t.Fatalf("%d weeks", len(r.Weeks))
	}
	w1, w2 := r.Weeks[0], r.Weeks[1]
	if !w1.Start.Equal(at(2, 0, 0, 0)) || w1.Deploys != 3 || w1.Failed != 1 || w2.Deploys != 6 || w2.Failed != 1 {
		t.Errorf("weeks %+v", r.Weeks)
	}
	near("week 1 change failure rate", w1.ChangeFailureRate, 1.0/3)
	near("week 2 change failure rate", w2.ChangeFailureRate, 0.2)
	near("week 1 lead time", w1.LeadTime, 15000)
	near("week 2 lead time", w2.LeadTime, math.NaN())
	near("week 2 recovery", w2.RecoveryTime, 7770)

	j := r.Judge
	// d4's version v3 came back unchanged and stable (d5): a false
	// rollback. d6 was undone back to v3 within a day (d7): missed; d9 has
	// an incident label: missed.
	if j.Failed != 2 || !slices.Equal(j.FalseRollbacks, []string{"d4"}) || j.Stable != 6 || !slices.Equal(j.Missed, []string{"d6", "d9"}) || j.Inconclusive != 1 {
		t.Errorf("judge %+v", j)
	}
	near("inconclusive share", j.InconclusiveShare, 1.0/9)
	near("precision", j.Precision, 0.5)
	near("recall", j.Recall, 1.0/3)
	if !slices.Equal(j.Detection, []float64{9, 30}) {
		t.Errorf("detection %v", j.Detection)
	}
}

func TestEmptyHistoryIsNotZero(t *testing.T) {
	r := Compute(nil, Options{From: at(2, 0, 0, 0), To: at(16, 0, 0, 0)})
	for name, f := range map[string]Figure{"lead": r.LeadTime, "cfr": r.ChangeFailureRate, "recovery": r.RecoveryTime} {
		if !math.IsNaN(f.Value) || f.Band != "" {
			t.Errorf("%s of no deploys = %v (%s): want unknown, not zero", name, f.Value, f.Band)
		}
	}
	if r.Frequency.Value != 0 || r.Frequency.Band != "low" {
		t.Errorf("frequency %+v", r.Frequency)
	}
	if !math.IsNaN(r.Judge.Precision) || !math.IsNaN(r.Judge.Recall) {
		t.Errorf("precision %v recall %v", r.Judge.Precision, r.Judge.Recall)
	}
}

func TestBands(t *testing.T) {
	cases := []struct {
		band func(float64) string
		v    float64
		want string
	}{
		{frequencyBand, 3, "elite"}, {frequencyBand, 0.5, "high"}, {frequencyBand, 0.1, "medium"}, {frequencyBand, 0.01, "low"},
		{leadBand, 3600, "elite"}, {leadBand, 2 * 86400, "high"}, {leadBand, 10 * 86400, "medium"}, {leadBand, 60 * 86400, "low"},
		{recoveryBand, 600, "elite"}, {recoveryBand, 7200, "high"}, {recoveryBand, 3 * 86400, "medium"}, {recoveryBand, 10 * 86400, "low"},
		{failureBand, 0, "elite"}, {failureBand, 0.09, "medium"}, {failureBand, 0.22, "high"}, {failureBand, 0.5, "low"},
	}
	for _, c := range cases {
		if got := c.band(c.v); got != c.want {
			t.Errorf("band(%v) = %s, want %s", c.v, got, c.want)
		}
	}
}

// A release is audited against later deploys of the same service to the
// same environment only: v2 failing in staging is not shown false by v2
// stable in production, nor by another service's v2.
func TestAuditKeepsToTheTarget(t *testing.T) {
	h := []Deploy{
		{ID: "staging-v2", Service: "api", Environment: "staging", Version: "v2", PreviousVersion: "v1", Verdict: failed,
			StartedAt: at(2, 10, 0, 0), DetectedAt: ptr(at(2, 10, 1, 0)), EndedAt: at(2, 10, 2, 0)},
		{ID: "prod-v2", Service: "api", Environment: "production", Version: "v2", PreviousVersion: "v1", Verdict: stable,
			StartedAt: at(2, 12, 0, 0), EndedAt: at(2, 12, 10, 0)},
		{ID: "web-v2", Service: "web", Environment: "staging", Version: "v2", PreviousVersion: "v1", Verdict: stable,
			StartedAt: at(2, 13, 0, 0), EndedAt: at(2, 13, 10, 0)},
		{ID: "staging-v3", Service: "api", Environment: "staging", Version: "v3", PreviousVersion: "v1", Verdict: stable,
			StartedAt: at(2, 15, 0, 0), EndedAt: at(2, 15, 10, 0)},
	}
	r := Compute(h, Options{From: at(1, 0, 0, 0), To: at(3, 0, 0, 0)})
	if len(r.Judge.FalseRollbacks) != 0 || r.Judge.Precision != 1 {
		t.Errorf("false rollbacks %v, precision %v: want none and 1", r.Judge.FalseRollbacks, r.Judge.Precision)
	}
	// Recovered by the next stable deploy to staging, 5h09m after the detection.
	if r.RecoveryTime.Samples != 1 || r.RecoveryTime.Value != (5*3600+9*60) {
		t.Errorf("recovery %v over %d, want 18540s over 1", r.RecoveryTime.Value, r.RecoveryTime.Samples)
	}
}
