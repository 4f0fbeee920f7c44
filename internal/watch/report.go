package watch

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/deploywatch/deploywatch/internal/judge"
)

// Verdict is the outcome of a whole watch.
type Verdict string

// The verdicts, and the exit codes they map to.
const (
	Stable       Verdict = "stable"       // exit 0
	Failed       Verdict = "failed"       // exit 1
	Inconclusive Verdict = "inconclusive" // exit 3
)

// ExitCode is the process exit code for the verdict.
func (v Verdict) ExitCode() int {
	switch v {
	case Stable:
		return 0
	case Failed:
		return 1
	}
	return 3
}

// Phase names.
const (
	PhaseStart    = "start"
	PhaseRollout  = "rollout"
	PhaseWarmup   = "warmup"
	PhaseVerify   = "verify"
	PhaseMonitor  = "monitor"
	PhaseStable   = "stable"
	PhaseRollback = "rollback"
	PhasePause    = "pause"
)

// Outcome is how a phase ended.
type Outcome string

// Phase outcomes.
const (
	OutcomePassed      Outcome = "passed"
	OutcomeFailed      Outcome = "failed"
	OutcomeInterrupted Outcome = "interrupted"
	OutcomeErrored     Outcome = "inconclusive"
	OutcomeSkipped     Outcome = "skipped"
)

// Report is the whole watch, as --report writes it.
type Report struct {
	Verdict Verdict `json:"verdict"`
	// Reason says why, in one sentence with the evidence.
	Reason  string         `json:"reason"`
	Deploy  Deploy         `json:"deploy"`
	Phases  []*PhaseRecord `json:"phases"`
	Checks  []*CheckResult `json:"checks"`
	Skipped []SkippedCheck `json:"skipped,omitempty"`
	// Verify lists the post-deploy checklist's items.
	Verify     []VerifyItem    `json:"verify,omitempty"`
	DetectedAt *time.Time      `json:"detected_at"`
	Rollback   *RollbackRecord `json:"rollback"`
	// Settings are the measured and derived settings the watch used.
	Settings Settings `json:"settings"`
	// Deliveries lists notifications sent (none until sinks exist).
	Deliveries []Delivery `json:"deliveries"`
	EndedAt    time.Time  `json:"ended_at"`
}

// Settings are the values the watch settled on at Start.
type Settings struct {
	ScrapeInterval string `json:"scrape_interval,omitempty"`
	// ScrapeIntervalSource says whether it was configured or measured.
	ScrapeIntervalSource string `json:"scrape_interval_source,omitempty"`
	Window               string `json:"window,omitempty"`
	BaselineWindow       string `json:"baseline_window,omitempty"`
	// BaselineHistory is how much of the baseline window the source held.
	BaselineHistory string `json:"baseline_history,omitempty"`
	Interval        string `json:"interval"`
	Warmup          string `json:"warmup"`
	Monitor         string `json:"monitor"`
	OnFailure       string `json:"on_failure"`
}

// PhaseRecord is one phase of the timeline.
type PhaseRecord struct {
	Name      string     `json:"name"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	Outcome   Outcome    `json:"outcome,omitempty"`
	Reason    string     `json:"reason,omitempty"`
}

// CheckResult is a check's standing: its decisive measurement (the one
// that failed it) or its latest, with the evidence.
type CheckResult struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Verdict is pass, warn, fail, nodata or error.
	Verdict    judge.Status `json:"verdict"`
	Value      *float64     `json:"value"`
	Baseline   *float64     `json:"baseline"`
	Line       *float64     `json:"line"`
	Rule       string       `json:"rule"`
	WarnRule   string       `json:"warn_rule,omitempty"`
	Window     string       `json:"window"`
	Query      string       `json:"query"`
	Samples    *float64     `json:"samples"`
	Confidence *float64     `json:"confidence"`
	Reason     string       `json:"reason,omitempty"`
	Unit       string       `json:"unit,omitempty"`
	// BreachingBefore says the baseline was already beyond the fail line.
	BreachingBefore bool `json:"breaching_before,omitempty"`
	// BaselineWindow is the window the baseline was measured over.
	BaselineWindow string `json:"baseline_window,omitempty"`
	BaselineError  string `json:"baseline_error,omitempty"`
	// Measurements counts the monitor's measurements of this check.
	Measurements int       `json:"measurements"`
	MeasuredAt   time.Time `json:"measured_at,omitzero"`
}

// SkippedCheck is a check that could not run here.
type SkippedCheck struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// RollbackRecord says whether a rollback happened and how it went.
type RollbackRecord struct {
	Performed bool       `json:"performed"`
	OK        bool       `json:"ok"`
	Revision  string     `json:"revision"`
	At        *time.Time `json:"at"`
	Duration  string     `json:"duration,omitempty"`
	Error     string     `json:"error,omitempty"`
	// Policy is what on_failure (or on_inconclusive) asked for.
	Policy string `json:"policy"`
	// Note says what the platform did, or why it declined to undo.
	Note string `json:"note,omitempty"`
}

// Delivery is one notification's outcome.
type Delivery struct {
	Sink  string `json:"sink"`
	Event string `json:"event"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// WriteFile writes the report as indented JSON, atomically: a reader never
// sees half a report, even if deploywatch is killed while writing.
func (r *Report) WriteFile(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding report: %w", err)
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(path), ".deploywatch-report-*")
	if err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing report: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}
