// Package notifytest holds what the sinks' tests share: sample messages.
package notifytest

import (
	"time"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/notify"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// Started is 2026-11-25 12:00:00 UTC.
var Started = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func f(v float64) *float64 { return &v }

// Message returns a sample message of kind; a verdict message is the
// failed deploy of v2 rolled back to v1 on its error rate.
func Message(kind event.Kind) notify.Message {
	m := notify.Message{
		Kind: kind, Service: "api", Environment: "staging", Version: "v2", PreviousVersion: "v1",
		TriggeredBy: "octocat", StartedAt: Started, At: Started.Add(9 * time.Second),
		RunURL: "https://github.com/acme/api/actions/runs/42", DashboardURL: "https://grafana.example.com/d/api-overview",
	}
	if kind == event.Started {
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
	if kind == event.Verdict {
		m.Verdict = "failed"
		m.Report = &watch.Report{Verdict: watch.Failed, Reason: m.Reason,
			Deploy: watch.Deploy{Service: "api", Environment: "staging", Version: "v2", PreviousVersion: "v1", StartedAt: Started},
			Phases: []*watch.PhaseRecord{{Name: "start", StartedAt: Started, Outcome: watch.OutcomePassed, Reason: "baseline captured over 2m"},
				{Name: "monitor", StartedAt: Started, Outcome: watch.OutcomeFailed, Reason: m.Reason}},
			Checks: []*watch.CheckResult{check}, DetectedAt: &at, Rollback: rb}
	}
	return m
}
