// Package notifytest holds what the sinks' tests share: sample messages
// and golden-file comparison.
package notifytest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/notify"
	"github.com/deploywatch/deploywatch/internal/watch"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Started is 2026-11-25 12:00:00 UTC.
var Started = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func f(v float64) *float64 { return &v }

// Message returns a sample message of kind; a verdict message is the
// failed deploy of v2 rolled back to v1 on its error rate.
func Message(kind notify.Kind) notify.Message {
	m := notify.Message{
		Kind: kind, Service: "api", Environment: "staging", Version: "v2", PreviousVersion: "v1",
		TriggeredBy: "octocat", StartedAt: Started, At: Started.Add(9 * time.Second),
		RunURL: "https://github.com/acme/api/actions/runs/42", DashboardURL: "https://grafana.example.com/d/api-overview",
	}
	if kind == notify.Started {
		m.At = Started
		return m
	}
	check := &watch.CheckResult{Name: "error_rate", Type: "ratio", Verdict: judge.Fail, Value: f(0.0559), Baseline: f(0.0009),
		Line: f(0.01), Rule: "> 1%", Window: "4s", Unit: "percent", Samples: f(224), Confidence: f(0.99999),
		Query: `(sum(increase(http_requests_total{job="api",status=~"5.."}[5s]))) / (sum(increase(http_requests_total{job="api"}[5s])))`}
	at := Started.Add(9 * time.Second)
	rb := &watch.RollbackRecord{Performed: true, OK: true, Revision: "v1", At: &at, Duration: "12ms", Policy: "rollback"}
	m.Check, m.Rollback = check, rb
	m.Reason = "error_rate: 5.59% of 224 requests > 1% (100.00% sure)"
	if kind == notify.Verdict {
		m.Verdict = "failed"
		m.Report = &watch.Report{Verdict: watch.Failed, Reason: m.Reason,
			Deploy: watch.Deploy{Service: "api", Environment: "staging", Version: "v2", PreviousVersion: "v1", StartedAt: Started},
			Phases: []*watch.PhaseRecord{{Name: "start", StartedAt: Started, Outcome: watch.OutcomePassed, Reason: "baseline captured over 2m"},
				{Name: "monitor", StartedAt: Started, Outcome: watch.OutcomeFailed, Reason: m.Reason}},
			Checks: []*watch.CheckResult{check}, DetectedAt: &at, Rollback: rb}
	}
	return m
}

// Golden compares got (indented JSON when it is not []byte) with
// testdata/name; -update rewrites it.
func Golden(t *testing.T, name string, got any) {
	t.Helper()
	var data []byte
	switch v := got.(type) {
	case []byte:
		data = v
	case string:
		data = []byte(v)
	default:
		var err error
		data, err = json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, '\n')
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, data) {
		t.Errorf("%s differs from the golden file (run with -update if the change is intended):\n got: %s\nwant: %s", path, data, want)
	}
}
