// Package watch is deploywatch's timeline engine. It follows one deploy
// through Start, Rollout, Warm-up, Verify, Monitor and Stable, judges it
// with the checks of its Spec against the baseline captured at Start, and
// acts on a failure by policy: roll back to the version recorded at Start,
// pause, or only notify. Everything it does is recorded in a Report and
// announced as events.
//
// A newcomer reads timeline.go first: the table of phases and the walker
// that begins, ends and saves each of them. Each phase is a function in its
// own file (start.go, rollout.go, warmup.go, verify.go, monitor.go,
// stable.go); policy.go is what happens after a failure; state.go is the
// document that lets another process take a watch up (Resume).
//
// The engine depends only on the small interfaces declared in source.go
// and platform.go; metric sources, platforms and output live in their own
// packages.
package watch

import (
	"context"
	"log/slog"
	"time"

	"github.com/deploywatch/deploywatch/internal/event"
)

// Engine runs watches. Build it with New.
type Engine struct {
	spec       Spec
	source     Querier
	platform   Platform
	clock      Clock
	observer   Observer
	log        *slog.Logger
	checklist  Checklist
	checkpoint Checkpointer
	abort      context.Context
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

// WithCheckpoint sets who keeps the watch's state as it goes (a state
// file, the store), so that another process can resume it.
func WithCheckpoint(c Checkpointer) Option { return func(e *Engine) { e.checkpoint = c } }

// WithAbort gives the engine a context that, when done, interrupts even a
// rollback in progress (a second Ctrl-C). The context given to Run only
// stops the watching: a rollback that has begun is finished, within its
// platform's timeout, and reported.
func WithAbort(ctx context.Context) Option { return func(e *Engine) { e.abort = ctx } }

// New returns an engine for spec. source may be nil when the spec has no
// metrics.
func New(spec Spec, source Querier, platform Platform, opts ...Option) *Engine {
	e := &Engine{
		spec: spec, source: source, platform: platform,
		clock: realClock{}, observer: nopObserver{}, log: slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(e)
	}
	return e
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
	// Origin is kept, as given, in every saved State: what whoever resumes
	// the watch needs to build the engine again (the config file, the
	// report path). The engine does not read it.
	Origin []byte
}

// Checkpointer keeps the state of watches in progress.
type Checkpointer interface {
	// Checkpoint keeps s. It is called at every phase change, after every
	// monitor tick, before the deploy command runs and before a rollback
	// begins. A failure is announced once as a note and the watch goes on
	// (judging the deploy, and rolling a bad one back, matter more than
	// being resumable), except before the deploy command: a deploy that a
	// crash would leave unknown is not started.
	Checkpoint(s *State) error
}

// CheckpointFunc adapts a function to a Checkpointer.
type CheckpointFunc func(*State) error

// Checkpoint calls f.
func (f CheckpointFunc) Checkpoint(s *State) error { return f(s) }

// Clock is the engine's time, injected so tests control it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Observer receives the engine's events, in order, from one goroutine.
// It must not block for long: printers write a line, sinks queue.
type Observer interface {
	Event(e Event)
}

type nopObserver struct{}

func (nopObserver) Event(Event) {}

// ObserverFunc adapts a function to an Observer.
type ObserverFunc func(Event)

// Event calls f.
func (f ObserverFunc) Event(e Event) { f(e) }

// Event is one thing that happened during a watch.
type Event struct {
	Time time.Time  `json:"time"`
	Kind event.Kind `json:"event"`
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
	// Deploy is set on started and resumed.
	Deploy *Deploy `json:"deploy,omitempty"`
	// Rollback is set on rollback_done and rollback_failed.
	Rollback *RollbackRecord `json:"rollback,omitempty"`
	// Report is the whole report, on verdict.
	Report *Report `json:"report,omitempty"`
}
