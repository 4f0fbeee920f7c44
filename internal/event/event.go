// Package event names what happens during a watch. The engine emits these
// kinds, the notification sinks filter on them (the config's events:
// lists), and the JSON output, webhook payloads and the store carry them:
// one name for one thing everywhere.
package event

import (
	"fmt"
	"slices"
	"strings"
)

// Kind names an event.
type Kind string

// The kinds of event, in timeline order.
const (
	// Started: the deploy is recorded (service, version, the version
	// running before it).
	Started Kind = "started"
	// Baseline: every check's baseline was measured.
	Baseline Kind = "baseline"
	// PhaseStarted and PhaseEnded bracket each phase of the timeline.
	PhaseStarted Kind = "phase_started"
	PhaseEnded   Kind = "phase_ended"
	// Progress: the rollout or the pods moved (e.g. "2/3 new pods ready").
	Progress Kind = "progress"
	// Measured: one round of measurements of every check.
	Measured Kind = "measured"
	// Breached: a check crossed its warn or fail line.
	Breached Kind = "breached"
	// Note: something the watch wants a person to know.
	Note Kind = "note"
	// Resumed: a watch was taken up from its saved state.
	Resumed Kind = "resumed"
	// RollbackStarted, RollbackDone and RollbackFailed follow a rollback.
	RollbackStarted Kind = "rollback_started"
	RollbackDone    Kind = "rollback_done"
	RollbackFailed  Kind = "rollback_failed"
	// Verdict: the watch ended stable, failed or inconclusive.
	Verdict Kind = "verdict"
	// HookOutput is a line a hook printed.
	HookOutput Kind = "hook_output"
)

// Deliverable are the kinds a notification sink can be sent, and so the
// names an events: filter accepts.
var Deliverable = []Kind{Started, Breached, PhaseEnded, Resumed, RollbackStarted, RollbackDone, RollbackFailed, Verdict}

// aliases are earlier names that configs may still use.
var aliases = map[string]Kind{
	"deploy_started": Started,    // the engine's name before 0.2
	"check_breached": Breached,   // the engine's name before 0.2
	"phase":          PhaseEnded, // the webhook filter's name before 0.2
}

// ParseDeliverable reads a name from an events: filter, accepting the old
// aliases.
func ParseDeliverable(name string) (Kind, error) {
	k := Kind(name)
	if a, ok := aliases[name]; ok {
		k = a
	}
	if !slices.Contains(Deliverable, k) {
		names := make([]string, len(Deliverable))
		for i, d := range Deliverable {
			names[i] = string(d)
		}
		return "", fmt.Errorf("event %q: want one of %s", name, strings.Join(names, ", "))
	}
	return k, nil
}
