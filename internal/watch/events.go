package watch

import "time"

// EventKind names an event.
type EventKind string

// The events a watch emits, in timeline order.
const (
	EventStarted         EventKind = "deploy_started"
	EventBaseline        EventKind = "baseline"
	EventPhaseStarted    EventKind = "phase_started"
	EventPhaseEnded      EventKind = "phase_ended"
	EventProgress        EventKind = "progress"
	EventMeasured        EventKind = "measured"
	EventBreached        EventKind = "check_breached"
	EventNote            EventKind = "note"
	EventRollbackStarted EventKind = "rollback_started"
	EventRollbackDone    EventKind = "rollback_done"
	EventVerdict         EventKind = "verdict"
	// EventHookOutput is a line printed by a hook; platforms emit it.
	EventHookOutput EventKind = "hook_output"
)

// Event is one thing that happened during a watch.
type Event struct {
	Time time.Time `json:"time"`
	Kind EventKind `json:"event"`
	// Elapsed is the time since the watch began.
	Elapsed float64 `json:"elapsed_seconds"`
	Service string  `json:"service"`
	Version string  `json:"version"`
	Phase   string  `json:"phase,omitempty"`
	// Outcome is set on phase_ended.
	Outcome Outcome `json:"outcome,omitempty"`
	Message string  `json:"message,omitempty"`
	// Hook names the hook of a hook_output line.
	Hook string `json:"hook,omitempty"`
	// Checks are the measurements of a baseline or a monitor tick; Check
	// is the one check of a breach.
	Checks []*CheckResult `json:"checks,omitempty"`
	Check  *CheckResult   `json:"check,omitempty"`
	// Deploy is set on deploy_started.
	Deploy *Deploy `json:"deploy,omitempty"`
	// Rollback is set on rollback_done.
	Rollback *RollbackRecord `json:"rollback,omitempty"`
	// Report is the whole report, on verdict.
	Report *Report `json:"report,omitempty"`
}
