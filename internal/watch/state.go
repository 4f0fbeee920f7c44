package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
)

// StateVersion is the format of the State this deploywatch writes, and the
// newest it reads.
const StateVersion = 1

// State is a watch in progress: enough for another process to take it up
// where it was (Resume), with the same deploy, baseline, pinned rollback
// target, phase timings and measurements. It is small (kilobytes: the
// baseline's counts, not the raw series) and is written as it is to a
// state file by the CLI and to the store by serve.
type State struct {
	StateVersion int       `json:"state_version"`
	SavedAt      time.Time `json:"saved_at"`
	// Origin is the caller's own record (Request.Origin), kept as given.
	Origin json.RawMessage `json:"origin,omitempty"`
	// Request is what the watch was asked to do.
	Request StateRequest `json:"request"`
	// Began is when the watch began; elapsed times count from it.
	Began time.Time `json:"began"`
	// DeployBegan is set just before the deploy command runs;
	// DeployInterrupted when it was stopped before it finished.
	DeployBegan       bool `json:"deploy_began,omitempty"`
	DeployInterrupted bool `json:"deploy_interrupted,omitempty"`
	RolledOutAtOnce   bool `json:"rolled_out_at_once,omitempty"`
	// Platform is the platform's own record, e.g. the pinned revision.
	Platform json.RawMessage `json:"platform,omitempty"`
	// Checklist is what the checklist measured before the deploy (the
	// error lines in the logs).
	Checklist json.RawMessage `json:"checklist,omitempty"`
	// ScrapeInterval, Window and History are what Start measured.
	ScrapeInterval Duration `json:"scrape_interval,omitempty"`
	Window         Duration `json:"window,omitempty"`
	History        Duration `json:"history,omitempty"`
	// Look is how often the monitor measures the checks.
	Look Duration `json:"look,omitempty"`
	// JudgeFrom is when the warm-up ended ($since_warmup starts there).
	JudgeFrom time.Time `json:"judge_from,omitzero"`
	// SideFrom is when the rollout's side-by-side comparison began
	// counting (a warm-up after both sides first served).
	SideFrom time.Time `json:"side_from,omitzero"`
	// LastTick is the time of the monitor's last measurement.
	LastTick time.Time `json:"last_tick,omitzero"`
	// Decision is set once the watch failed or was found inconclusive,
	// while its policy is carried out.
	Decision *Decision `json:"decision,omitempty"`
	// Checks are the checks' baselines and progress, in the spec's order.
	Checks []CheckState `json:"checks,omitempty"`
	// Pods is the platform health check's progress.
	Pods *judge.TrackerState `json:"pods,omitempty"`
	// Report is the report so far: phases, check results, verify items.
	Report *Report `json:"report"`
}

// StateRequest is the Request a State continues.
type StateRequest struct {
	Version     string `json:"version"`
	RunDeploy   bool   `json:"run_deploy"`
	TriggeredBy string `json:"triggered_by,omitempty"`
}

// CheckState is one check's baseline and progress.
type CheckState struct {
	Name     string             `json:"name"`
	Window   Duration           `json:"window"`
	Baseline BaselineState      `json:"baseline"`
	Tracker  judge.TrackerState `json:"tracker"`
	Frozen   bool               `json:"frozen,omitempty"`
	// Undecided is the reason of the last look that measured, when the
	// check was beyond its line there and the control group could neither
	// blame the release nor show a shared cause.
	Undecided string `json:"undecided,omitempty"`
	// Comparisons counts the comparisons with the control group so far.
	Comparisons int `json:"comparisons,omitempty"`
	// SideLooks counts the rollout's side-by-side comparisons so far.
	SideLooks int `json:"side_looks,omitempty"`
}

// BaselineState is a check's baseline: the counts it was measured on.
type BaselineState struct {
	// At is when the baseline window ended: the deploy's start, or
	// baseline.offset before it.
	At      time.Time     `json:"at,omitzero"`
	Window  Duration      `json:"window"`
	HasData bool          `json:"has_data"`
	Value   *float64      `json:"value,omitempty"`
	Bad     *float64      `json:"bad,omitempty"`
	Total   *float64      `json:"total,omitempty"`
	Count   *float64      `json:"count,omitempty"`
	Buckets []BucketState `json:"buckets,omitempty"`
}

// BucketState is a histogram bucket; the upper bound is written as
// Prometheus writes le ("+Inf" included), which JSON numbers cannot hold.
type BucketState struct {
	LE    string  `json:"le"`
	Count float64 `json:"count"`
}

// Duration is a duration written as Go writes it ("1m30s").
type Duration time.Duration

// MarshalText writes the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Errors of a state that cannot be resumed.
var (
	// ErrStateCorrupt: the data is not a whole, consistent state.
	ErrStateCorrupt = errors.New("not a valid deploywatch state")
	// ErrStateNewer: written by a newer deploywatch, in a format this one
	// does not know.
	ErrStateNewer = errors.New("state written by a newer deploywatch")
	// ErrStateMismatch: the state is not a watch of this spec.
	ErrStateMismatch = errors.New("state of another watch")
)

// DecodeState reads a state document, refusing a corrupt or truncated one
// and one of a newer format, each with its own error.
func DecodeState(data []byte) (*State, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: the file is empty", ErrStateCorrupt)
	}
	var head struct {
		StateVersion *int `json:"state_version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: truncated or corrupt JSON: %v", ErrStateCorrupt, err)
	}
	switch {
	case head.StateVersion == nil:
		return nil, fmt.Errorf("%w: it has no state_version", ErrStateCorrupt)
	case *head.StateVersion > StateVersion:
		return nil, fmt.Errorf("%w: state_version %d, and this deploywatch reads up to %d: resume it with the deploywatch that wrote it, or a newer one",
			ErrStateNewer, *head.StateVersion, StateVersion)
	case *head.StateVersion < 1:
		return nil, fmt.Errorf("%w: state_version %d", ErrStateCorrupt, *head.StateVersion)
	}
	var s State
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStateCorrupt, err)
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStateCorrupt, err)
	}
	return &s, nil
}

// validate checks that the state is consistent enough to resume.
func (s *State) validate() error {
	r := s.Report
	switch {
	case r == nil:
		return errors.New("it has no report")
	case r.Deploy.Service == "":
		return errors.New("its deploy has no service")
	case s.Began.IsZero():
		return errors.New("it has no began time")
	case len(r.Phases) == 0:
		return errors.New("it has no phases")
	case r.Verdict != InProgress && !r.Verdict.Ended():
		return fmt.Errorf("unknown verdict %q", r.Verdict)
	}
	for i, p := range r.Phases {
		if p == nil {
			return fmt.Errorf("phase %d is null", i)
		}
		if phaseIndex(p.Name) < 0 && p.Name != PhaseRollback && p.Name != PhasePause {
			return fmt.Errorf("unknown phase %q", p.Name)
		}
		if p.EndedAt == nil && i != len(r.Phases)-1 {
			return fmt.Errorf("phase %s never ended, but others followed it", p.Name)
		}
	}
	last := r.Phases[len(r.Phases)-1]
	if (last.Name == PhaseRollback || last.Name == PhasePause) && s.Decision == nil && r.Verdict == InProgress {
		return fmt.Errorf("it is in the %s phase with no decision to carry out", last.Name)
	}
	if last.Name == PhaseRollback && (r.Rollback == nil || r.Rollback.At == nil) && r.Verdict == InProgress && last.EndedAt == nil {
		return errors.New("its rollback phase has no rollback record")
	}
	if (last.Outcome == OutcomeFailed || last.Outcome == OutcomeInconclusive) && s.Decision == nil && r.Verdict == InProgress {
		return fmt.Errorf("its %s phase ended %s with no decision to carry out", last.Name, last.Outcome)
	}
	if d := s.Decision; d != nil && d.Verdict != Failed && d.Verdict != Inconclusive {
		return fmt.Errorf("decision with verdict %q", d.Verdict)
	}
	return nil
}

func phaseIndex(name string) int {
	return slices.IndexFunc(timeline, func(p phase) bool { return p.name == name })
}

// Encode writes the state as indented JSON.
func (s *State) Encode() ([]byte, error) { return encodeJSON(s) }

// WriteFile writes the state atomically and durably: the file always holds
// a whole state, the one before or the one after.
func (s *State) WriteFile(path string) error {
	data, err := s.Encode()
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	if err := writeFileAtomic(path, data); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	return nil
}

// state takes the watch's state now.
func (w *run) state() *State {
	rep := *w.report
	rep.Deploy = w.deploy
	rep.Checks = w.results()
	rep.Phases = make([]*PhaseRecord, len(w.report.Phases))
	for i, p := range w.report.Phases {
		cp := *p
		rep.Phases[i] = &cp
	}
	if rb := w.report.Rollback; rb != nil {
		cp := *rb
		rep.Rollback = &cp
	}
	rep.Verify = slices.Clone(w.report.Verify)
	s := &State{
		StateVersion: StateVersion, SavedAt: w.clock.Now(), Origin: w.req.Origin,
		Request:     StateRequest{Version: w.req.Version, RunDeploy: w.req.RunDeploy, TriggeredBy: w.req.TriggeredBy},
		Began:       w.began,
		DeployBegan: w.deployBegan, DeployInterrupted: w.deployInterrupted, RolledOutAtOnce: w.rolledOutAtOnce,
		ScrapeInterval: Duration(w.scrape), Window: Duration(w.window), History: Duration(w.history), Look: Duration(w.look),
		JudgeFrom: w.judgeFrom, SideFrom: w.sideFrom, LastTick: w.lastTick,
		Decision: w.decision,
		Report:   &rep,
	}
	if rs, ok := w.platform.(Resumable); ok {
		if raw, err := rs.SaveState(); err == nil {
			s.Platform = raw
		} else {
			w.log.Warn("the platform's state could not be saved", "err", err)
		}
	}
	if rc, ok := w.checklist.(ResumableChecklist); ok {
		if raw, err := rc.SaveState(); err == nil {
			s.Checklist = raw
		}
	}
	for _, c := range w.checks {
		s.Checks = append(s.Checks, CheckState{
			Name: c.cfg.Name, Window: Duration(c.window), Baseline: c.base.state(),
			Tracker: c.tracker.State(), Frozen: c.frozen, Undecided: c.undecided, Comparisons: c.comparisons, SideLooks: c.side.looks,
		})
	}
	if w.pods != nil {
		ts := w.pods.tracker.State()
		s.Pods = &ts
	}
	return s
}

func (b baseline) state() BaselineState {
	s := BaselineState{At: b.at, Window: Duration(b.window), HasData: b.hasData,
		Value: judge.Num(b.value), Bad: judge.Num(b.counts.Bad), Total: judge.Num(b.counts.Total), Count: judge.Num(b.count)}
	for _, bk := range b.hist {
		s.Buckets = append(s.Buckets, BucketState{LE: strconv.FormatFloat(bk.UpperBound, 'g', -1, 64), Count: bk.Count})
	}
	return s
}

func (s BaselineState) baseline() (baseline, error) {
	b := baseline{at: s.At, window: time.Duration(s.Window), hasData: s.HasData,
		value: numOr(s.Value), counts: judge.Counts{Bad: numOr(s.Bad), Total: numOr(s.Total)}, count: numOr(s.Count)}
	if len(s.Buckets) > 0 {
		buckets := make([]judge.Bucket, 0, len(s.Buckets))
		for _, bk := range s.Buckets {
			ub, err := strconv.ParseFloat(bk.LE, 64)
			if err != nil {
				return b, fmt.Errorf("bucket le %q: %w", bk.LE, err)
			}
			buckets = append(buckets, judge.Bucket{UpperBound: ub, Count: bk.Count})
		}
		if b.hist = judge.NewHistogram(buckets); b.hist == nil {
			return b, errors.New("the baseline histogram has no +Inf bucket")
		}
	}
	return b, nil
}

func numOr(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// Resume takes up a watch from its saved state and follows it to its
// verdict, as Run would have. A watch that had already ended is returned
// as it was, and nothing is done. A state that is not a watch of this
// engine's spec (ErrStateMismatch), or whose records cannot be taken back
// (ErrStateCorrupt), is refused before anything is done or announced.
func (e *Engine) Resume(ctx context.Context, saved *State) (*Report, error) {
	if saved.Report.Verdict.Ended() {
		return saved.Report, nil
	}
	s, err := clone(saved)
	if err != nil {
		return nil, err
	}
	w, err := e.restore(s)
	if err != nil {
		return nil, err
	}
	var platformErr error
	if rs, ok := w.platform.(Resumable); ok && len(s.Platform) > 0 {
		pctx, cancel := w.platformContext(ctx)
		platformErr = rs.RestoreState(pctx, w.deploy, s.Platform)
		cancel()
		if errors.Is(platformErr, ErrStateCorrupt) {
			return nil, platformErr
		}
	}
	if rc, ok := w.checklist.(ResumableChecklist); ok && len(s.Checklist) > 0 {
		if err := rc.RestoreState(s.Checklist); err != nil {
			return nil, fmt.Errorf("%w: the checklist's record: %v", ErrStateCorrupt, err)
		}
	}
	now := w.clock.Now()
	w.report.Resumes = append(w.report.Resumes, now)
	last := w.current
	w.emit(Event{Kind: event.Resumed, Deploy: &w.deploy,
		Message: fmt.Sprintf("resuming the watch of %s %s in its %s phase (saved %s ago)",
			w.deploy.Service, orUnknown(w.deploy.Version), last.Name, config.FormatDuration(now.Sub(s.SavedAt).Round(time.Second)))})
	if platformErr != nil {
		w.note("the platform could not take up all of its record of the watch: %v", platformErr)
	}
	if w.decision != nil {
		return w.carryOut(ctx), nil
	}
	from := phaseIndex(last.Name)
	if last.EndedAt != nil {
		from++
	}
	return w.walk(ctx, from), nil
}

// clone copies a state, so that resuming it leaves the caller's alone.
func clone(s *State) (*State, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStateCorrupt, err)
	}
	var cp State
	if err := json.Unmarshal(b, &cp); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStateCorrupt, err)
	}
	return &cp, nil
}

// restore rebuilds a run from a state.
func (e *Engine) restore(s *State) (*run, error) {
	if s.Report.Deploy.Service != e.spec.Service {
		return nil, fmt.Errorf("%w: it is a watch of service %q, and the config is of %q", ErrStateMismatch, s.Report.Deploy.Service, e.spec.Service)
	}
	rep := *s.Report
	w := &run{
		Engine: e, began: s.Began, report: &rep, deploy: rep.Deploy,
		req:         Request{Version: s.Request.Version, RunDeploy: s.Request.RunDeploy, TriggeredBy: s.Request.TriggeredBy, StartedAt: rep.Deploy.StartedAt, Origin: s.Origin},
		deployBegan: s.DeployBegan, deployInterrupted: s.DeployInterrupted, rolledOutAtOnce: s.RolledOutAtOnce,
		scrape: time.Duration(s.ScrapeInterval), window: time.Duration(s.Window), history: time.Duration(s.History), look: time.Duration(s.Look),
		judgeFrom: s.JudgeFrom, sideFrom: s.SideFrom, lastTick: s.LastTick, decision: s.Decision,
	}
	w.current = rep.Phases[len(rep.Phases)-1]
	w.resuming = w.current.EndedAt == nil
	w.requestSaves()
	if rep.Deliveries == nil {
		rep.Deliveries = []Delivery{}
	}
	results := map[string]*CheckResult{}
	for _, r := range rep.Checks {
		results[r.Name] = r
	}
	if s.Pods != nil {
		w.pods = newPodsCheck(e.spec.ErrorLimit)
		w.pods.tracker.Restore(*s.Pods)
		if r := results[PodsCheck]; r != nil {
			w.pods.result = r
		}
	}
	// A state saved before Start measured the checks has none: Start runs
	// again and builds them.
	if len(s.Checks) == 0 {
		return w, nil
	}
	if len(s.Checks) != len(e.spec.Checks) {
		return nil, fmt.Errorf("%w: it has %d checks, and the config %d", ErrStateMismatch, len(s.Checks), len(e.spec.Checks))
	}
	for i, cs := range s.Checks {
		cc := e.spec.Checks[i]
		if cs.Name != cc.Name {
			return nil, fmt.Errorf("%w: its check %d is %s, and the config's is %s", ErrStateMismatch, i+1, cs.Name, cc.Name)
		}
		c := newCheck(cc, time.Duration(cs.Window))
		base, err := cs.Baseline.baseline()
		if err != nil {
			return nil, fmt.Errorf("%w: check %s: %v", ErrStateCorrupt, cs.Name, err)
		}
		if base.at.IsZero() {
			// Saved before the baseline's time was kept: it ended where
			// the baseline always ends.
			base.at = w.deploy.StartedAt.Add(-e.spec.Metrics.BaselineOffset)
		}
		c.base = base
		c.tracker.Restore(cs.Tracker)
		c.frozen, c.undecided, c.comparisons = cs.Frozen, cs.Undecided, cs.Comparisons
		if cs.Comparisons == 0 {
			// Saved before the comparisons were counted, when they were
			// spent by the monitor's looks.
			c.comparisons = c.tracker.Measured()
		}
		c.side.looks = cs.SideLooks
		if r := results[cs.Name]; r != nil {
			c.result = r
		}
		w.checks = append(w.checks, c)
	}
	return w, nil
}
