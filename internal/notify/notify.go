// Package notify tells people and dashboards what a watch is doing: Slack
// messages, Grafana region annotations, Datadog events, signed webhooks and
// GitHub Actions summaries and outputs. A Dispatcher receives the engine's
// events and delivers them to every sink asynchronously, with bounded time
// and retries, so that a slow or broken sink can never delay a rollback;
// every delivery's outcome is kept for the report.
package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/textutil"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// Message is one thing to announce, with the evidence.
type Message struct {
	Kind            event.Kind `json:"event"`
	Service         string     `json:"service"`
	Environment     string     `json:"environment,omitempty"`
	Version         string     `json:"version"`
	PreviousVersion string     `json:"previous_version,omitempty"`
	TriggeredBy     string     `json:"triggered_by,omitempty"`
	StartedAt       time.Time  `json:"started_at"`
	At              time.Time  `json:"at"`
	// Verdict is stable, failed or inconclusive (verdict messages).
	Verdict string `json:"verdict,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Check is the evidence of a breach or of the deciding check.
	Check    *watch.CheckResult    `json:"check,omitempty"`
	Rollback *watch.RollbackRecord `json:"rollback,omitempty"`
	// Report is the whole report, on verdict messages.
	Report *watch.Report `json:"report,omitempty"`
	// RunURL links the CI run that deployed, when known.
	RunURL string `json:"run_url,omitempty"`
	// DashboardURL links a dashboard, when configured.
	DashboardURL string `json:"dashboard_url,omitempty"`
}

// ID identifies the deploy across its messages.
func (m Message) ID() string {
	return fmt.Sprintf("%s/%s/%s@%d", m.Service, m.Environment, m.Version, m.StartedAt.Unix())
}

// Sink delivers messages somewhere.
type Sink interface {
	// Name names the sink in the report ("slack", "grafana", ...).
	Name() string
	// Wants reports whether the sink takes messages of this kind.
	Wants(event.Kind) bool
	// Send delivers one message. An error wrapping ErrRetry may succeed
	// later (RetryAfter says when, if the server said).
	Send(ctx context.Context, m Message) error
}

// ErrRetry marks a failure that a later attempt may not have.
var ErrRetry = errors.New("retryable")

// RetryError is a retryable failure, with the server's Retry-After.
type RetryError struct {
	Err   error
	After time.Duration
}

func (e *RetryError) Error() string { return e.Err.Error() }

// Unwrap exposes both the cause and ErrRetry.
func (e *RetryError) Unwrap() []error { return []error{e.Err, ErrRetry} }

// Filter is a set of kinds; empty means the sink's defaults.
type Filter map[event.Kind]bool

// NewFilter builds a filter from the names of an events: list (old names
// included, see event.ParseDeliverable), or the defaults when names is
// empty. The config validated the names; one it did not know matches
// nothing.
func NewFilter(names []string, defaults ...event.Kind) Filter {
	f := Filter{}
	if len(names) == 0 {
		for _, k := range defaults {
			f[k] = true
		}
		return f
	}
	for _, n := range names {
		if k, err := event.ParseDeliverable(n); err == nil {
			f[k] = true
		}
	}
	return f
}

// Wants reports whether k passes.
func (f Filter) Wants(k event.Kind) bool { return f[k] }

// redact removes secrets from an error's text: the URL a transport error
// quotes (a Slack webhook URL is itself the secret) and any secret value.
func redact(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	msg := textutil.Redact(err.Error(), secrets...)
	if msg == err.Error() {
		return err
	}
	var re *RetryError
	if errors.As(err, &re) {
		return &RetryError{Err: errors.New(msg), After: re.After}
	}
	return errors.New(msg)
}
