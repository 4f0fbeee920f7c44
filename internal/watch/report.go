package watch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/traffic"
)

// Deploy identifies what is being deployed.
type Deploy struct {
	Service     string
	Environment string
	Version     string
	// PreviousVersion is the version recorded at Start: the rollback target.
	PreviousVersion string
	StartedAt       time.Time
	// TriggeredBy says who or what started it (CI actor, user).
	TriggeredBy string
}

// deployJSON is Deploy as the report writes it. The version recorded at
// Start is written twice: previous_revision is the report's original name
// (a contract), previous_version the name the notifications use.
type deployJSON struct {
	Service          string    `json:"service"`
	Environment      string    `json:"environment,omitempty"`
	Version          string    `json:"version"`
	PreviousRevision string    `json:"previous_revision"`
	PreviousVersion  string    `json:"previous_version"`
	StartedAt        time.Time `json:"started_at"`
	TriggeredBy      string    `json:"triggered_by,omitempty"`
}

// MarshalJSON writes the deploy with both names of the previous version.
func (d Deploy) MarshalJSON() ([]byte, error) {
	return json.Marshal(deployJSON{
		Service: d.Service, Environment: d.Environment, Version: d.Version,
		PreviousRevision: d.PreviousVersion, PreviousVersion: d.PreviousVersion,
		StartedAt: d.StartedAt, TriggeredBy: d.TriggeredBy,
	})
}

// UnmarshalJSON reads either name of the previous version.
func (d *Deploy) UnmarshalJSON(b []byte) error {
	var j deployJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*d = Deploy{Service: j.Service, Environment: j.Environment, Version: j.Version,
		PreviousVersion: j.PreviousVersion, StartedAt: j.StartedAt, TriggeredBy: j.TriggeredBy}
	if d.PreviousVersion == "" {
		d.PreviousVersion = j.PreviousRevision
	}
	return nil
}

// Verdict is the outcome of a whole watch.
type Verdict string

// The verdicts, and the exit codes they map to.
const (
	Stable       Verdict = "stable"       // exit 0
	Failed       Verdict = "failed"       // exit 1
	Inconclusive Verdict = "inconclusive" // exit 3
	// InProgress is the verdict of a report written while the watch runs
	// (or left by a process that died): not a verdict yet.
	InProgress Verdict = "in_progress"
)

// Ended reports whether v is a verdict a watch ends with.
func (v Verdict) Ended() bool { return v == Stable || v == Failed || v == Inconclusive }

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
	OutcomePassed       Outcome = "passed"
	OutcomeFailed       Outcome = "failed"
	OutcomeInterrupted  Outcome = "interrupted"
	OutcomeInconclusive Outcome = "inconclusive"
	OutcomeSkipped      Outcome = "skipped"
)

// Report is the whole watch, as --report writes it.
type Report struct {
	// Verdict is stable, failed or inconclusive; in_progress while the
	// watch runs.
	Verdict Verdict `json:"verdict"`
	// Reason says why, in one sentence with the evidence.
	Reason  string         `json:"reason"`
	Deploy  Deploy         `json:"deploy"`
	Phases  []*PhaseRecord `json:"phases"`
	Checks  []*CheckResult `json:"checks"`
	Skipped []SkippedCheck `json:"skipped,omitempty"`
	// Traffic counts the synthetic requests sent during the watch.
	Traffic *traffic.Stats `json:"traffic,omitempty"`
	// Detectability says, for each check, what the watch could see at the
	// traffic before the deploy: worked out at Start, before any verdict.
	Detectability []Detectability `json:"detectability,omitempty"`
	// Verify lists the post-deploy checklist's items.
	Verify     []VerifyItem    `json:"verify,omitempty"`
	DetectedAt *time.Time      `json:"detected_at"`
	Rollback   *RollbackRecord `json:"rollback"`
	// Settings are the measured and derived settings the watch used.
	Settings Settings `json:"settings"`
	// Deliveries lists the notifications sent and their outcomes.
	Deliveries []Delivery `json:"deliveries"`
	// Resumes lists when the watch was taken up again by another process.
	Resumes []time.Time `json:"resumes,omitempty"`
	EndedAt time.Time   `json:"ended_at,omitzero"`
}

// Settings are the values the watch settled on at Start.
type Settings struct {
	ScrapeInterval string `json:"scrape_interval,omitempty"`
	// ScrapeIntervalSource says whether it was configured or measured.
	ScrapeIntervalSource string `json:"scrape_interval_source,omitempty"`
	Window               string `json:"window,omitempty"`
	BaselineWindow       string `json:"baseline_window,omitempty"`
	// BaselineOffset is how far back the baseline window was moved.
	BaselineOffset string `json:"baseline_offset,omitempty"`
	// BaselineHistory is how much of the baseline window the source held.
	BaselineHistory string `json:"baseline_history,omitempty"`
	Interval        string `json:"interval"`
	// Look is how often the checks were measured: every scrape when the
	// source answers fast and the query budget allows, else the interval.
	Look      string `json:"look,omitempty"`
	Warmup    string `json:"warmup"`
	Monitor   string `json:"monitor"`
	OnFailure string `json:"on_failure"`
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
	Verdict  judge.Status `json:"verdict"`
	Value    *float64     `json:"value"`
	Baseline *float64     `json:"baseline"`
	// Line is the fail line applied; WarnLine the warn line, if any.
	Line       *float64 `json:"line"`
	WarnLine   *float64 `json:"warn_line,omitempty"`
	Rule       string   `json:"rule"`
	WarnRule   string   `json:"warn_rule,omitempty"`
	Window     string   `json:"window"`
	Query      string   `json:"query"`
	Samples    *float64 `json:"samples"`
	Confidence *float64 `json:"confidence"`
	Reason     string   `json:"reason,omitempty"`
	Unit       string   `json:"unit,omitempty"`
	// Test is how the check's looks share the chance of failing a healthy
	// release: sequential, spent (over the looks) or per_look.
	Test string `json:"test,omitempty"`
	// Statistic says what the value is when it is not made of counts (a
	// percentile the source computed, a value a command printed).
	Statistic string `json:"statistic,omitempty"`
	// Mode is report for a check that is measured but never fails a
	// deploy; its verdict then says whether it would have.
	Mode string `json:"mode,omitempty"`
	// Comparison says which comparison decided the verdict: "side_by_side"
	// (the new pods against the old ones during a rolling update),
	// "control" (against baseline.control), or, when absent, the line
	// drawn from the pre-deploy baseline. Control is the same measurement
	// over the same time on what the check was compared with: the old
	// pods, or the control group.
	Control    *float64 `json:"control,omitempty"`
	Comparison string   `json:"comparison,omitempty"`
	// BreachingBefore says the baseline was already beyond the fail line.
	BreachingBefore bool `json:"breaching_before,omitempty"`
	// BaselineWindow is the window the baseline was measured over.
	BaselineWindow string `json:"baseline_window,omitempty"`
	BaselineError  string `json:"baseline_error,omitempty"`
	// Measurements counts the monitor's measurements of this check.
	Measurements int       `json:"measurements"`
	MeasuredAt   time.Time `json:"measured_at,omitzero"`
}

// ComparisonSideBySide and ComparisonControl name, in a check's result,
// the comparison that decided its verdict when it was not the line and
// the pre-deploy baseline.
const (
	ComparisonSideBySide = "side_by_side"
	ComparisonControl    = "control"
)

// comparedWith is what a verdict was compared with: by names the
// comparison, value is the same measurement there. The zero value is the
// line and the pre-deploy baseline.
type comparedWith struct {
	by    string
	value *float64
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

// WriteFile writes the report as indented JSON, atomically and durably: a
// reader never sees half a report, and a report that was written survives
// a crash of the machine.
func (r *Report) WriteFile(path string) error {
	data, err := r.Encode()
	if err != nil {
		return fmt.Errorf("encoding report: %w", err)
	}
	if err := writeFileAtomic(path, data); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

// Encode writes the report as indented JSON, as people read it: a rule
// such as "> 1%" stays as it is, not HTML-escaped.
func (r *Report) Encode() ([]byte, error) { return encodeJSON(r) }

func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it,
// renames it over path and syncs the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
