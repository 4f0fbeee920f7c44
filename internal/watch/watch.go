// Package watch is deploywatch's timeline engine. It follows one deploy
// through Start, Rollout, Warm-up, Verify, Monitor and Stable, judges it
// with the checks of the config against the baseline captured at Start,
// and acts on a failure by policy: roll back to the version recorded at
// Start, pause, or only notify. Everything it does is recorded in a Report
// and announced as Events.
//
// The engine depends only on the small interfaces declared here; metric
// sources, platforms and output live in their own packages.
package watch

import (
	"context"
	"log/slog"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/metrics"
)

// Querier answers PromQL.
type Querier interface {
	Query(ctx context.Context, expr string, at time.Time) (metrics.Vector, error)
	QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (metrics.Matrix, error)
}

// HistoryCollector is a source that starts without history, such as the
// embedded engine: before run deploys, Start lets it collect the baseline
// window.
type HistoryCollector interface {
	// CollectingSince is when the source began collecting.
	CollectingSince() time.Time
}

// Platform makes, follows and undoes a deploy.
type Platform interface {
	// Current returns the version running now, or "" if unknown.
	Current(ctx context.Context, d Deploy) (string, error)
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

// RollbackOutcome says what a rollback did.
type RollbackOutcome struct {
	// Declined is set when the platform chose not to undo, e.g. because a
	// GitOps controller would revert the undo; Note says what it did instead.
	Declined bool
	Note     string
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

// Checklist is the post-deploy checklist run in the Verify phase
// (readiness, version, smoke tests, logs).
type Checklist interface {
	// Before records, at Start, what items compare with after the deploy.
	Before(ctx context.Context, d Deploy)
	// Run runs the items after the rollout.
	Run(ctx context.Context, d Deploy) []VerifyItem
}

// VerifyItem is one item of the checklist with its evidence.
type VerifyItem struct {
	Name string `json:"name"`
	// Outcome is passed, failed or skipped (an item whose inputs are not
	// configured, or that cannot run here: never a failure).
	Outcome  Outcome `json:"outcome"`
	Evidence string  `json:"evidence,omitempty"`
}

// Progress is where a rollout stands.
type Progress struct {
	Done bool
	// Failed ends the rollout: the platform says it cannot finish.
	Failed  bool
	Message string
}

// Clock is the engine's time, injected so tests control it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Observer receives the engine's events, in order, from one goroutine.
// It must not block for long: printers write a line, sinks queue.
type Observer interface {
	Event(e Event)
}

// Deploy identifies what is being deployed.
type Deploy struct {
	Service     string `json:"service"`
	Environment string `json:"environment,omitempty"`
	Version     string `json:"version"`
	// PreviousVersion is the version recorded at Start: the rollback target.
	PreviousVersion string    `json:"previous_revision"`
	StartedAt       time.Time `json:"started_at"`
	// TriggeredBy says who or what started it (CI actor, user).
	TriggeredBy string `json:"triggered_by,omitempty"`
	// Running is set while Start records the running version for a watch
	// of a deploy that someone else already started: the platform must
	// find the version that served before it, not the new one.
	AlreadyStarted bool `json:"-"`
}

// Request is one watch to run.
type Request struct {
	Version string
	// StartedAt places the deploy's start; zero means now.
	StartedAt time.Time
	// RunDeploy makes the engine start the deploy itself (run); otherwise
	// someone else started it (watch).
	RunDeploy   bool
	TriggeredBy string
	// Abort, when done, interrupts even a rollback in progress. The context
	// given to Run only stops the watching: a rollback that has begun is
	// finished (within its timeout) and reported.
	Abort context.Context
}

// Engine runs watches. Build it with New.
type Engine struct {
	cfg       *config.Config
	source    Querier
	platform  Platform
	clock     Clock
	observer  Observer
	log       *slog.Logger
	checklist Checklist
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock replaces the wall clock.
func WithClock(c Clock) Option { return func(e *Engine) { e.clock = c } }

// WithObserver sets who receives events.
func WithObserver(o Observer) Option { return func(e *Engine) { e.observer = o } }

// WithChecklist sets the Verify phase's checklist.
func WithChecklist(c Checklist) Option { return func(e *Engine) { e.checklist = c } }

// WithLogger sets the operator log.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// New returns an engine for cfg. source may be nil when the config has no
// metrics.
func New(cfg *config.Config, source Querier, platform Platform, opts ...Option) *Engine {
	e := &Engine{
		cfg: cfg, source: source, platform: platform,
		clock: realClock{}, observer: nopObserver{}, log: slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

type nopObserver struct{}

func (nopObserver) Event(Event) {}

// ObserverFunc adapts a function to an Observer.
type ObserverFunc func(Event)

// Event calls f.
func (f ObserverFunc) Event(e Event) { f(e) }
