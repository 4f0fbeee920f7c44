package watch

import (
	"context"
	"encoding/json"
	"iter"
)

// Platform makes, follows and undoes a deploy.
type Platform interface {
	// Current returns the version running before the deploy, the rollback
	// target, or "" if unknown. begun says someone else already started
	// the deploy (watch): the platform must then look past the new
	// version for the one that served before it.
	Current(ctx context.Context, d Deploy, begun bool) (string, error)
	// Deploy starts the deploy (run only).
	Deploy(ctx context.Context, d Deploy) error
	// Progress reports whether the new version is fully out. A Progress
	// with Failed set ends the rollout as a failure.
	Progress(ctx context.Context, d Deploy) (Progress, error)
	// Rollback returns to d.PreviousVersion, the version recorded at Start.
	Rollback(ctx context.Context, d Deploy) (RollbackOutcome, error)
	// Pause stops the rollout where it is, for on_failure: pause.
	Pause(ctx context.Context, d Deploy) error
}

// Progress is where a rollout stands.
type Progress struct {
	Done bool
	// Failed ends the rollout: the platform says it cannot finish.
	Failed  bool
	Message string
}

// RollbackOutcome says what a rollback did.
type RollbackOutcome struct {
	// Declined is set when the platform chose not to undo, e.g. because a
	// GitOps controller would revert the undo; Note says what it did instead.
	Declined bool
	Note     string
}

// SideBySider is a platform on which the old version and the new one serve
// at the same time while the rollout runs, as in a Kubernetes rolling
// update.
type SideBySider interface {
	// SideBySide returns the query variables that select the new
	// version's pods and those that select the old version's (the one
	// recorded at Start); ok is set only while both have pods serving.
	SideBySide(ctx context.Context, d Deploy) (newVars, oldVars map[string]string, ok bool)
}

// Resumable is a platform that keeps a record of its own about a watch,
// such as the Kubernetes revision pinned at Start, and takes it back in
// another process.
type Resumable interface {
	// SaveState returns the platform's record of the watch, kept in the
	// watch's State.
	SaveState() (json.RawMessage, error)
	// RestoreState takes a saved record back before a resumed watch goes on.
	RestoreState(ctx context.Context, d Deploy, saved json.RawMessage) error
}

// VersionReader is a platform that can say which version runs now,
// without pinning anything: a resumed watch asks it whether a deploy that
// had begun changed anything.
type VersionReader interface {
	// Running returns the version running now, as Current names versions,
	// or "" if it cannot tell.
	Running(ctx context.Context, d Deploy) (string, error)
}

// SaveRequester is a platform whose own record changes in the middle of
// a call, such as the process group of a rollback hook it just started:
// it calls save, in the calling goroutine, so that the watch's state
// records it before the call returns.
type SaveRequester interface {
	RequestSaves(save func())
}

// RollbackFinisher is a platform that can finish a rollback that was under
// way when deploywatch stopped, without ever undoing twice.
type RollbackFinisher interface {
	// FinishRollback finds out whether the version recorded at Start
	// already runs: then it only waits for it to be out (or does nothing),
	// otherwise it rolls back. It never goes past the recorded version.
	FinishRollback(ctx context.Context, d Deploy) (RollbackOutcome, error)
}

// HealthReporter is a platform that watches the health of what it
// deployed (Kubernetes pods). A problem is a hard failure: it fails the
// deploy in every phase, warm-up included.
type HealthReporter interface {
	Health(ctx context.Context, d Deploy) (Health, error)
}

// Health is the state of the deployed workload.
type Health struct {
	// Problems fail the deploy; each names the pod, container and reason.
	Problems []string
	// Summary says how things stand, e.g. "3/3 new pods ready".
	Summary string
	// NewShare is the share of ready pods that run the new version (the
	// traffic shift), NaN when unknown.
	NewShare float64
}

// QueryVarser is a platform that contributes query variables, such as the
// pod-template-hash of the version being judged. baseline asks for the
// values that describe the version before the deploy.
type QueryVarser interface {
	QueryVars(ctx context.Context, d Deploy, baseline bool) map[string]string
}

// ResumableChecklist is a checklist that keeps what Before measured in the
// watch's state: after the deploy it could not be measured again.
type ResumableChecklist interface {
	Checklist
	SaveState() (json.RawMessage, error)
	RestoreState(saved json.RawMessage) error
}

// Checklist is the post-deploy checklist run in the Verify phase
// (metrics flowing, readiness, version, smoke tests, logs).
type Checklist interface {
	// Before records, at Start, what items compare with after the deploy.
	Before(ctx context.Context, d Deploy)
	// Run runs the items after the rollout, one at a time, as they are
	// taken: the engine stops at the first failed item.
	Run(ctx context.Context, d Deploy) iter.Seq[VerifyItem]
}

// VerifyItem is one item of the checklist with its evidence.
type VerifyItem struct {
	Name string `json:"name"`
	// Outcome is passed, failed or skipped (an item whose inputs are not
	// configured, or that cannot run here: never a failure).
	Outcome  Outcome `json:"outcome"`
	Evidence string  `json:"evidence,omitempty"`
}
