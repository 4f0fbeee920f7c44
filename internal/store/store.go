// Package store is deploywatch's history: every deploy serve watched (or a
// CLI run sent it), its events, its report, and the resumable state of the
// watches in progress, so that another replica can take them up. The
// backends are sub-packages: sqlite (one file, the default) and postgres
// (several replicas); storetest is the conformance suite both pass.
package store

import (
	"context"
	"errors"
	"time"
)

// Verdicts a deploy can have in the store: the report's, and in_progress
// while it is watched.
const (
	InProgress   = "in_progress"
	Stable       = "stable"
	Failed       = "failed"
	Inconclusive = "inconclusive"
)

// Deploy is one watched deploy.
type Deploy struct {
	ID string
	// Key identifies the change the deploy is of, so that it is recorded
	// once however many replicas see it: namespace/kind/name@revision for
	// serve.
	Key string
	// Source is serve or cli.
	Source          string
	Service         string
	Environment     string
	Namespace       string
	Kind            string
	Workload        string
	Version         string
	PreviousVersion string
	// Revision is the workload's revision being watched (Kubernetes: the
	// revision number of the new template).
	Revision    string
	Verdict     string
	Reason      string
	TriggeredBy string
	StartedAt   time.Time
	DetectedAt  *time.Time
	EndedAt     *time.Time
	// RolledBack and RollbackOK are the report's rollback.performed and .ok.
	RolledBack bool
	RollbackOK bool
	// CommitTime is when the deployed commit was made, when known: the
	// start of the DORA lead time.
	CommitTime *time.Time
	// Owner is the replica watching it, while in progress.
	Owner     string
	UpdatedAt time.Time
	// Report and State are the watch's JSON documents.
	Report []byte
	State  []byte
}

// Progress is what a checkpoint changes of a deploy.
type Progress struct {
	Verdict         string
	Reason          string
	PreviousVersion string
	DetectedAt      *time.Time
	EndedAt         *time.Time
	RolledBack      bool
	RollbackOK      bool
	Owner           string
	Report          []byte
	State           []byte
}

// Event is one event of a deploy, in the order it happened.
type Event struct {
	// Seq numbers a deploy's events from 1; the store assigns it.
	Seq  int64
	Time time.Time
	Kind string
	// Data is the event as --output json prints it.
	Data []byte
}

// The labels a person may put on a deploy's verdict.
const (
	// LabelFalseRollback: the release rolled back was good.
	LabelFalseRollback = "false_rollback"
	// LabelMissedRegression: a release judged stable was bad.
	LabelMissedRegression = "missed_regression"
	// LabelIncident: an incident was caused by this release, at At.
	LabelIncident = "incident"
)

// Labels are the label names a deploy may carry.
var Labels = []string{LabelFalseRollback, LabelMissedRegression, LabelIncident}

// Label marks a verdict by hand.
type Label struct {
	DeployID string
	Label    string
	// At is when it happened (an incident's start); default when labelled.
	At   time.Time
	Note string
	// Who is the name of the API token that labelled it.
	Who     string
	Created time.Time
}

// Service is one service of the history.
type Service struct {
	Name         string
	Environments []string
	Deploys      int
	LastDeploy   time.Time
}

// Workload is what serve remembers of a watched workload between deploys.
type Workload struct {
	Namespace, Kind, Name string
	// Revision is the last revision serve knows (by its object's UID) and
	// RevisionNumber its number then: the pinned target of the next deploy.
	Revision       string
	RevisionNumber string
	// Template is the pod template's hash at that revision.
	Template string
	// ConfigError is the problem with the workload's ConfigMap, if any.
	ConfigError string
	UpdatedAt   time.Time
}

// Query selects deploys, newest first.
type Query struct {
	Service, Environment, Namespace, Verdict string
	Since, Until                             time.Time
	// Limit is the page size (default 50, at most 500).
	Limit int
	// Cursor continues a listing where the page before it ended.
	Cursor string
}

// Page is one page of deploys; Next continues it ("" at the end).
type Page struct {
	Deploys []Deploy
	Next    string
}

// Store keeps the history.
type Store interface {
	// CreateDeploy records a new deploy, unless one with the same Key
	// exists: it returns the stored deploy and whether it is new.
	CreateDeploy(ctx context.Context, d Deploy) (Deploy, bool, error)
	// Checkpoint saves a deploy's progress.
	Checkpoint(ctx context.Context, id string, p Progress) error
	// AppendEvents adds events to a deploy, numbering them after the ones
	// it has.
	AppendEvents(ctx context.Context, id string, events []Event) error
	// PutEvents adds events numbered by their sender; an event whose Seq
	// the deploy has already is left as it is (a retried batch).
	PutEvents(ctx context.Context, id string, events []Event) error
	// AddLabel marks a deploy's verdict.
	AddLabel(ctx context.Context, l Label) error
	// Labels returns the labels of the deploys, by deploy id.
	Labels(ctx context.Context, ids []string) (map[string][]Label, error)
	// Services lists the services of the history.
	Services(ctx context.Context) ([]Service, error)
	// Deploy returns one deploy with its report and state.
	Deploy(ctx context.Context, id string) (Deploy, error)
	// Events returns a deploy's events after seq.
	Events(ctx context.Context, id string, afterSeq int64) ([]Event, error)
	// ListDeploys returns a page of deploys, without reports and states.
	ListDeploys(ctx context.Context, q Query) (Page, error)
	// InProgress returns the deploys being watched, with their states.
	InProgress(ctx context.Context) ([]Deploy, error)
	// PutWorkload records a workload's known revision or config problem.
	PutWorkload(ctx context.Context, w Workload) error
	// Workload returns what is known of a workload.
	Workload(ctx context.Context, namespace, kind, name string) (Workload, error)
	// Prune deletes deploys that ended before the time, with their events.
	Prune(ctx context.Context, endedBefore time.Time) (int64, error)
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	Close() error
}

// ErrNotFound is a deploy or workload the store does not have.
var ErrNotFound = errors.New("not found")
