package judge

// Limits turn single measurements into a check's outcome, so that one bad
// scrape neither fails a deploy nor one failed query ends a watch.
type Limits struct {
	// Failures is how many consecutive failing measurements fail the check.
	Failures int
	// Errors is how many consecutive erroring measurements make the check
	// give up (inconclusive).
	Errors int
}

// Tracker follows one check's measurements against its Limits. Its zero
// value treats each limit as 1.
type Tracker struct {
	Limits Limits

	failStreak, errStreak int
	failed, gaveUp        bool
	last                  Status
	measured              int
	judged                int // measurements that were pass, warn or fail
}

// Observe records one measurement and reports whether the check is now
// done: failed or given up. Once done, later measurements are ignored.
func (t *Tracker) Observe(s Status) (done bool) {
	if t.failed || t.gaveUp {
		return true
	}
	t.measured++
	t.last = s
	switch s {
	case Fail:
		t.failStreak++
		t.errStreak = 0
		t.judged++
	case Error:
		t.errStreak++
	case Pass, Warn:
		t.failStreak, t.errStreak = 0, 0
		t.judged++
	default: // NoData breaks a failure streak: a breach must be consecutive.
		t.failStreak, t.errStreak = 0, 0
	}
	if t.failStreak >= max(t.Limits.Failures, 1) {
		t.failed = true
	}
	if t.errStreak >= max(t.Limits.Errors, 1) {
		t.gaveUp = true
	}
	return t.failed || t.gaveUp
}

// Failed reports whether the check reached its failure limit.
func (t *Tracker) Failed() bool { return t.failed }

// GaveUp reports whether the check reached its error limit.
func (t *Tracker) GaveUp() bool { return t.gaveUp }

// FailStreak is the number of consecutive failing measurements so far.
func (t *Tracker) FailStreak() int { return t.failStreak }

// ErrStreak is the number of consecutive erroring measurements so far.
func (t *Tracker) ErrStreak() int { return t.errStreak }

// Last is the status of the latest measurement.
func (t *Tracker) Last() Status { return t.last }

// Judged reports whether any measurement could be judged (pass, warn or
// fail), as opposed to only nodata or errors.
func (t *Tracker) Judged() bool { return t.judged > 0 }

// Measured is how many measurements were observed.
func (t *Tracker) Measured() int { return t.measured }

// TrackerState is a Tracker's progress, saved with a watch's state so that
// another process can take the check up where it was.
type TrackerState struct {
	FailStreak int    `json:"fail_streak"`
	ErrStreak  int    `json:"err_streak"`
	Failed     bool   `json:"failed,omitempty"`
	GaveUp     bool   `json:"gave_up,omitempty"`
	Last       Status `json:"last"`
	Measured   int    `json:"measured"`
	Judged     int    `json:"judged"`
}

// State returns the tracker's progress.
func (t *Tracker) State() TrackerState {
	return TrackerState{
		FailStreak: t.failStreak, ErrStreak: t.errStreak, Failed: t.failed, GaveUp: t.gaveUp,
		Last: t.last, Measured: t.measured, Judged: t.judged,
	}
}

// Restore sets the tracker's progress from a saved state; its Limits stay.
func (t *Tracker) Restore(s TrackerState) {
	t.failStreak, t.errStreak, t.failed, t.gaveUp = s.FailStreak, s.ErrStreak, s.Failed, s.GaveUp
	t.last, t.measured, t.judged = s.Last, s.Measured, s.Judged
}
