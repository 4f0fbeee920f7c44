package watch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/judge"
)

// fallbackScrape is assumed when the scrape interval can be neither read
// from the config nor measured: Prometheus's default.
const fallbackScrape = 15 * time.Second

// Run follows one deploy to its verdict and returns the report. Cancelling
// ctx stops the watch (an inconclusive verdict, no action taken); a
// rollback already under way is finished and reported unless req.Abort
// ends too.
func (e *Engine) Run(ctx context.Context, req Request) *Report {
	w := &run{Engine: e, req: req, began: e.clock.Now()}
	return w.run(ctx)
}

// run is the state of one watch.
type run struct {
	*Engine
	req    Request
	began  time.Time
	report *Report
	deploy Deploy
	checks []*check
	window time.Duration
	// judgeFrom is when warm-up ended: the start of $since_warmup.
	judgeFrom time.Time
	current   *PhaseRecord
	// rolledOutAtOnce is set when the first look found the rollout done.
	rolledOutAtOnce bool
	// pods follows the platform's health report, when it gives one.
	pods       *podsCheck
	lastHealth string
}

// errStopped ends the timeline when the caller cancelled the watch.
var errStopped = errors.New("the watch was stopped before a verdict")

func (w *run) run(ctx context.Context) *Report {
	cfg := w.cfg
	started := w.req.StartedAt
	if started.IsZero() {
		started = w.began
	}
	w.deploy = Deploy{
		Service: cfg.Service, Environment: cfg.Environment, Version: w.req.Version,
		StartedAt: started, TriggeredBy: w.req.TriggeredBy,
	}
	w.report = &Report{
		Deploy: w.deploy, Phases: []*PhaseRecord{}, Checks: []*CheckResult{}, Deliveries: []Delivery{},
		Settings: Settings{
			Interval: config.FormatDuration(cfg.Phases.Interval.D()), Warmup: config.FormatDuration(cfg.Phases.Warmup.D()),
			Monitor: config.FormatDuration(cfg.Phases.Monitor.D()), OnFailure: string(cfg.OnFailure),
		},
	}
	for _, s := range cfg.Skipped {
		w.report.Skipped = append(w.report.Skipped, SkippedCheck(s))
	}

	if err := w.start(ctx); err != nil {
		return w.stop(ctx, err)
	}
	for _, step := range []func(context.Context) error{w.rollout, w.warmup, w.verify, w.monitor} {
		if err := step(ctx); err != nil {
			return w.stop(ctx, err)
		}
	}
	return w.stable()
}

// outcome errors end the timeline early.
type failure struct {
	reason string
	check  *check
}

func (f *failure) Error() string { return f.reason }

type inconclusive struct{ reason string }

func (i *inconclusive) Error() string { return i.reason }

// stop ends the timeline on a failure, an inconclusive watch or an
// interruption.
func (w *run) stop(ctx context.Context, err error) *Report {
	var f *failure
	var inc *inconclusive
	switch {
	case errors.As(err, &f):
		w.endPhase(OutcomeFailed, f.reason)
		now := w.clock.Now()
		w.report.DetectedAt = &now
		w.act(ctx, w.cfg.OnFailure, "on_failure", f.reason)
		return w.finish(Failed, f.reason)
	case errors.As(err, &inc):
		w.endPhase(OutcomeErrored, inc.reason)
		w.act(ctx, w.cfg.OnInconclusive, "on_inconclusive", inc.reason)
		return w.finish(Inconclusive, inc.reason)
	default:
		reason := errStopped.Error() + "; nothing was rolled back"
		w.endPhase(OutcomeInterrupted, reason)
		return w.finish(Inconclusive, reason)
	}
}

func (w *run) stable() *Report {
	var warned, blind, gaveUp []string
	for _, c := range w.checks {
		switch {
		case c.tracker.GaveUp():
			gaveUp = append(gaveUp, c.cfg.Name)
		case !c.tracker.Judged():
			blind = append(blind, fmt.Sprintf("%s (%s)", c.cfg.Name, c.result.Reason))
		case c.result.Verdict == judge.Warn || c.result.Verdict == judge.Fail:
			warned = append(warned, c.cfg.Name)
		}
	}
	parts := []string{"every check held through the monitor window"}
	if len(w.checks) == 0 {
		parts = []string{"the rollout completed (no metric checks configured)"}
		if w.pods != nil {
			parts = []string{"the rollout completed and the pods stayed healthy through the monitor window (no metric checks configured)"}
		}
	}
	if len(warned) > 0 {
		parts = append(parts, "warnings: "+strings.Join(warned, ", "))
	}
	if len(blind) > 0 {
		parts = append(parts, "could not judge: "+strings.Join(blind, "; "))
	}
	if len(gaveUp) > 0 {
		parts = append(parts, "gave up on: "+strings.Join(gaveUp, ", "))
	}
	reason := strings.Join(parts, "; ")
	w.beginPhase(PhaseStable)
	w.endPhase(OutcomePassed, reason)
	return w.finish(Stable, reason)
}

func (w *run) finish(v Verdict, reason string) *Report {
	r := w.report
	r.Verdict, r.Reason = v, reason
	r.Deploy = w.deploy
	r.Checks = r.Checks[:0]
	if w.pods != nil {
		r.Checks = append(r.Checks, w.pods.result)
	}
	for _, c := range w.checks {
		r.Checks = append(r.Checks, c.result)
	}
	r.EndedAt = w.clock.Now()
	w.emit(Event{Kind: EventVerdict, Message: fmt.Sprintf("%s: %s", v, reason), Report: r})
	return r
}

// act carries out a policy after a failed or inconclusive watch.
func (w *run) act(ctx context.Context, policy config.Policy, setting, reason string) {
	rec := &RollbackRecord{Policy: string(policy), Revision: w.deploy.PreviousVersion}
	w.report.Rollback = rec
	// The action must finish even if the watch is being stopped: a
	// half-done rollback is the worst outcome. Only Abort interrupts it.
	actx := context.WithoutCancel(ctx)
	if w.req.Abort != nil {
		var cancel context.CancelCauseFunc
		actx, cancel = context.WithCancelCause(actx)
		stop := context.AfterFunc(w.req.Abort, func() { cancel(errors.New("aborted by a second interrupt")) })
		defer stop()
		defer cancel(nil)
	}
	switch policy {
	case config.PolicyRollback:
		w.beginPhase(PhaseRollback)
		at := w.clock.Now()
		rec.Performed, rec.At = true, &at
		target := w.deploy.PreviousVersion
		if target == "" {
			target = "the previous version"
		}
		w.emit(Event{Kind: EventRollbackStarted, Message: fmt.Sprintf("rolling back to %s: %s", target, reason)})
		out, err := w.platform.Rollback(actx, w.deploy)
		rec.Duration = w.clock.Now().Sub(at).Round(time.Millisecond).String()
		rec.Note = out.Note
		switch {
		case err != nil:
			if cause := context.Cause(actx); cause != nil {
				err = fmt.Errorf("%w (%v)", err, cause)
			}
			rec.Error = err.Error()
			w.endPhase(OutcomeFailed, "rollback failed: "+err.Error())
		case out.Declined:
			rec.Performed, rec.At = false, nil
			w.endPhase(OutcomeSkipped, "not rolled back: "+out.Note)
		default:
			rec.OK = true
			msg := "rolled back to " + target
			if out.Note != "" {
				msg += ": " + out.Note
			}
			w.endPhase(OutcomePassed, msg)
		}
		w.emit(Event{Kind: EventRollbackDone, Message: w.current.Reason, Rollback: rec})
	case config.PolicyPause:
		w.beginPhase(PhasePause)
		if err := w.platform.Pause(actx, w.deploy); err != nil {
			rec.Error = err.Error()
			w.endPhase(OutcomeFailed, "pause hook failed: "+err.Error())
		} else {
			w.endPhase(OutcomePassed, "the new version stays in place, paused, for a human to decide")
		}
	default:
		rec.Revision = ""
		w.note("%s is notify: the new version stays in place", setting)
	}
}

// --- phases -----------------------------------------------------------

func (w *run) start(ctx context.Context) error {
	w.beginPhase(PhaseStart)
	w.deploy.AlreadyStarted = !w.req.RunDeploy
	prev, err := w.platform.Current(ctx, w.deploy)
	w.deploy.AlreadyStarted = false
	switch {
	case err != nil:
		w.note("could not read the running version: %v", err)
	case prev != "":
		w.deploy.PreviousVersion = prev
	}
	if w.checklist != nil {
		w.checklist.Before(ctx, w.deploy)
	}
	w.emit(Event{Kind: EventStarted, Deploy: &w.deploy,
		Message: fmt.Sprintf("deploying %s %s (running: %s)", w.deploy.Service, orUnknown(w.deploy.Version), orUnknown(w.deploy.PreviousVersion))})
	if ctx.Err() != nil {
		return errStopped
	}
	if w.source == nil {
		w.endPhase(OutcomePassed, "no metrics configured")
		return nil
	}
	if err := w.collectHistory(ctx); err != nil {
		return err
	}
	w.settle(ctx)
	if ctx.Err() != nil {
		return errStopped
	}
	var parts []string
	for _, c := range w.checks {
		parts = append(parts, fmt.Sprintf("%s %s", c.cfg.Name, FormatValue(c.result.Baseline, c.cfg.Unit)))
	}
	w.emit(Event{Kind: EventBaseline, Checks: w.results(), Message: "baseline over " + w.report.Settings.BaselineHistory + ": " + strings.Join(parts, ", ")})
	w.endPhase(OutcomePassed, "baseline captured over "+w.report.Settings.BaselineHistory)
	return nil
}

// collectHistory gives a source without history (the embedded engine) the
// baseline window before run deploys. A watch of a deploy that already
// happened cannot have a baseline from such a source; it says so.
func (w *run) collectHistory(ctx context.Context) error {
	hc, ok := w.source.(HistoryCollector)
	if !ok {
		return nil
	}
	since := hc.CollectingSince()
	if !w.req.RunDeploy {
		if w.deploy.StartedAt.Before(since.Add(w.cfg.Baseline.Window.D())) {
			w.note("the embedded engine began collecting at %s: there is little or no history before this deploy, so baseline-relative lines fall back to their floors",
				since.Format(time.TimeOnly))
		}
		return nil
	}
	ready := since.Add(w.cfg.Baseline.Window.D())
	if wait := ready.Sub(w.clock.Now()); wait > 0 {
		w.note("the embedded engine has no history: scraping for %s to capture the baseline before deploying",
			config.FormatDuration(wait.Round(time.Second)))
		if err := w.sleep(ctx, wait); err != nil {
			return err
		}
	}
	w.deploy.StartedAt = w.clock.Now()
	return nil
}

// settle measures what the watch needs before the deploy: the scrape
// interval (which sizes the windows), the history available, and every
// check's baseline.
func (w *run) settle(ctx context.Context) {
	m := w.cfg.Metrics
	at := w.deploy.StartedAt
	scrape, source := m.ScrapeInterval.D(), "configured"
	if scrape == 0 {
		var err error
		scrape, err = w.measureScrape(ctx, at)
		source = "measured"
		if err != nil {
			scrape, source = fallbackScrape, "assumed"
			w.note("could not measure the scrape interval (%v); assuming %s", err, fallbackScrape)
		}
	}
	w.window = w.cfg.DefaultWindow(scrape)
	w.report.Settings.ScrapeInterval = config.FormatDuration(scrape)
	w.report.Settings.ScrapeIntervalSource = source
	w.report.Settings.Window = config.FormatDuration(w.window)

	want := w.cfg.Baseline.Window.D()
	history := w.measureHistory(ctx, at, want, scrape)
	w.report.Settings.BaselineWindow = config.FormatDuration(want)
	w.report.Settings.BaselineHistory = config.FormatDuration(history)
	if history < want {
		w.note("the metric source holds %s of history before the deploy; the baseline uses that instead of %s",
			config.FormatDuration(history), config.FormatDuration(want))
	}
	for _, cc := range w.cfg.Checks {
		win := cc.Window.D()
		if win == 0 {
			win = w.window
		}
		w.checks = append(w.checks, newCheck(cc, win))
	}
	baseVars := w.platformVars(ctx, true)
	w.parallel(ctx, func(ctx context.Context, c *check) {
		if history < 2*scrape {
			c.base = baseline{window: history, value: math.NaN(), count: math.NaN()}
			c.result.BaselineError = "no history before the deploy"
			return
		}
		c.measureBaseline(ctx, w.source, m.Selector, baseVars, at, history)
	})
}

// measureScrape reads the scrape interval off the timestamps of the
// target's up series: a range query of timestamp(up) returns, at each
// step, the time of the latest scrape.
func (w *run) measureScrape(ctx context.Context, at time.Time) (time.Duration, error) {
	expr := fmt.Sprintf("timestamp(up{%s})", w.cfg.Metrics.Selector)
	mat, err := w.source.QueryRange(ctx, expr, at.Add(-3*time.Minute), at, 500*time.Millisecond)
	if err != nil {
		return 0, err
	}
	var gaps []float64
	for _, s := range mat {
		var last float64
		for i, p := range s.Points {
			if i > 0 && p.Value > last {
				gaps = append(gaps, p.Value-last)
			}
			last = p.Value
		}
	}
	if len(gaps) == 0 {
		return 0, fmt.Errorf("fewer than two scrapes of %s in the last 3m", expr)
	}
	sort.Float64s(gaps)
	median := gaps[len(gaps)/2]
	return time.Duration(median * float64(time.Second)).Round(10 * time.Millisecond), nil
}

// measureHistory returns how much of the baseline window the source holds
// for the target, judged by its up series.
func (w *run) measureHistory(ctx context.Context, at time.Time, want, scrape time.Duration) time.Duration {
	expr := fmt.Sprintf("count(up{%s})", w.cfg.Metrics.Selector)
	step := max(want/200, scrape/2, 500*time.Millisecond)
	mat, err := w.source.QueryRange(ctx, expr, at.Add(-want), at, step)
	if err != nil {
		w.note("could not measure the history before the deploy (%v); the baseline uses %s", err, config.FormatDuration(want))
		return want
	}
	first := at
	for _, s := range mat {
		if len(s.Points) > 0 && s.Points[0].Time.Before(first) {
			first = s.Points[0].Time
		}
	}
	// A point at a step means a sample within the lookback before it.
	return min(at.Sub(first).Round(time.Second), want)
}

func (w *run) rollout(ctx context.Context) error {
	w.beginPhase(PhaseRollout)
	if w.req.RunDeploy {
		if err := w.platform.Deploy(ctx, w.deploy); err != nil {
			if ctx.Err() != nil {
				return errStopped
			}
			return &failure{reason: "the deploy command failed: " + err.Error()}
		}
	}
	deadline := w.clock.Now().Add(w.cfg.Phases.Rollout.D())
	var lastMsg string
	errStreak := 0
	for polls := 1; ; polls++ {
		if err := w.watchHealth(ctx); err != nil {
			return err
		}
		p, err := w.platform.Progress(ctx, w.deploy)
		if err == nil {
			errStreak = 0
		}
		switch {
		case ctx.Err() != nil:
			return errStopped
		case err != nil:
			lastMsg = err.Error()
			errStreak++
			w.note("rollout status: %v", err)
			if errStreak >= w.cfg.Judge.ErrorLimit {
				return &inconclusive{reason: "could not follow the rollout: " + err.Error()}
			}
		case p.Failed:
			return &failure{reason: "the rollout failed: " + p.Message}
		case p.Done:
			w.rolledOutAtOnce = polls == 1
			w.endPhase(OutcomePassed, p.Message)
			return nil
		default:
			if p.Message != lastMsg {
				w.emit(Event{Kind: EventProgress, Message: p.Message})
			}
			lastMsg = p.Message
		}
		if !w.clock.Now().Before(deadline) {
			return &failure{reason: fmt.Sprintf("the rollout did not complete within %s: %s",
				config.FormatDuration(w.cfg.Phases.Rollout.D()), lastMsg)}
		}
		if err := w.sleep(ctx, w.cfg.Phases.Interval.D()); err != nil {
			return err
		}
	}
}

func (w *run) warmup(ctx context.Context) error {
	w.beginPhase(PhaseWarmup)
	end := w.clock.Now().Add(w.cfg.Phases.Warmup.D())
	if w.rolledOutAtOnce && !w.req.RunDeploy {
		// The rollout was complete at the first look: it may have finished
		// before the watch began, so the warm-up counts from the deploy's
		// start, and a watch started late may be past it already.
		end = w.deploy.StartedAt.Add(w.cfg.Phases.Warmup.D())
	}
	for w.clock.Now().Before(end) {
		if err := w.watchHealth(ctx); err != nil {
			return err
		}
		if err := w.sleep(ctx, min(w.cfg.Phases.Interval.D(), end.Sub(w.clock.Now()))); err != nil {
			return err
		}
	}
	if err := w.watchHealth(ctx); err != nil {
		return err
	}
	w.judgeFrom = w.clock.Now()
	w.endPhase(OutcomePassed, "")
	return nil
}

// verify runs the post-deploy checklist: metrics are flowing, then the
// configured items (readiness, version, smoke tests, logs). A failed item
// fails the deploy with the item as the reason.
func (w *run) verify(ctx context.Context) error {
	w.beginPhase(PhaseVerify)
	if err := w.watchHealth(ctx); err != nil {
		return err
	}
	if w.source != nil {
		if err := w.verifyMetrics(ctx); err != nil {
			return err
		}
	}
	if w.checklist != nil {
		for _, it := range w.checklist.Run(ctx, w.deploy) {
			w.addVerifyItem(it)
			if ctx.Err() != nil {
				return errStopped
			}
			if it.Outcome == OutcomeFailed {
				return &failure{reason: "verify " + it.Name + ": " + it.Evidence}
			}
		}
	}
	if w.source == nil && w.checklist == nil {
		w.endPhase(OutcomeSkipped, "nothing to verify")
		return nil
	}
	w.endPhase(OutcomePassed, "the post-deploy checklist passed")
	return nil
}

func (w *run) addVerifyItem(it VerifyItem) {
	w.report.Verify = append(w.report.Verify, it)
	msg := fmt.Sprintf("%s %s", it.Name, it.Outcome)
	if it.Evidence != "" {
		msg += ": " + it.Evidence
	}
	w.emit(Event{Kind: EventNote, Message: msg})
}

// verifyMetrics waits, within phases.verify, for the metrics to flow.
func (w *run) verifyMetrics(ctx context.Context) error {
	deadline := w.clock.Now().Add(w.cfg.Phases.Verify.D())
	errStreak := 0
	for {
		problem, err := w.metricsFlowing(ctx)
		switch {
		case ctx.Err() != nil:
			return errStopped
		case err != nil:
			errStreak++
			if errStreak >= w.cfg.Judge.ErrorLimit {
				return &inconclusive{reason: "could not verify that metrics flow: " + err.Error()}
			}
		case problem == "":
			w.addVerifyItem(VerifyItem{Name: "metrics", Outcome: OutcomePassed, Evidence: "the targets are up and the request series exist"})
			return nil
		default:
			errStreak = 0
		}
		if !w.clock.Now().Before(deadline) {
			w.addVerifyItem(VerifyItem{Name: "metrics", Outcome: OutcomeFailed, Evidence: problem})
			return &failure{reason: fmt.Sprintf("metrics are not flowing %s after the rollout: %s",
				config.FormatDuration(w.cfg.Phases.Verify.D()), problem)}
		}
		if err := w.sleep(ctx, w.cfg.Phases.Interval.D()); err != nil {
			return err
		}
	}
}

// metricsFlowing checks that a target is up and, with the default checks,
// that its request series exist. It returns the problem, if any.
func (w *run) metricsFlowing(ctx context.Context) (string, error) {
	qctx, cancel := w.queryContext(ctx)
	defer cancel()
	return MetricsFlowing(qctx, w.source, w.cfg, w.clock.Now())
}

// MetricsFlowing is the checklist's "metrics flowing" item: up{selector}
// has a target up and, with the default checks, the request series exist.
// It returns the problem, or "" when metrics flow.
func MetricsFlowing(ctx context.Context, q Querier, cfg *config.Config, at time.Time) (string, error) {
	m := cfg.Metrics
	up := fmt.Sprintf("up{%s}", m.Selector)
	vec, err := q.Query(ctx, up, at)
	if err != nil {
		return "", err
	}
	if len(vec) == 0 {
		return fmt.Sprintf("%s has no series: is the service scraped?", up), nil
	}
	upCount := 0
	for _, s := range vec {
		if s.Value == 1 {
			upCount++
		}
	}
	if upCount == 0 {
		return fmt.Sprintf("%s: none of %d targets is up", up, len(vec)), nil
	}
	if cfg.DefaultChecks {
		req := fmt.Sprintf("count(%s{%s})", m.RequestsMetric, m.Selector)
		vec, err := q.Query(ctx, req, at)
		if err != nil {
			return "", err
		}
		if len(vec) == 0 {
			return fmt.Sprintf("%s has no series: does the service export %s?", req, m.RequestsMetric), nil
		}
	}
	return "", nil
}

func (w *run) monitor(ctx context.Context) error {
	w.beginPhase(PhaseMonitor)
	if len(w.checks) == 0 && w.pods == nil {
		w.endPhase(OutcomeSkipped, "no checks")
		return nil
	}
	interval := w.cfg.Phases.Interval.D()
	start := w.clock.Now()
	end := start.Add(w.cfg.Phases.Monitor.D())
	for next := start.Add(interval); !next.After(end); next = next.Add(interval) {
		if err := w.sleep(ctx, next.Sub(w.clock.Now())); err != nil {
			return err
		}
		if err := w.tick(ctx); err != nil {
			return err
		}
	}
	w.endPhase(OutcomePassed, "")
	return nil
}

// tick measures every check once and applies the limits.
func (w *run) tick(ctx context.Context) error {
	if err := w.watchHealth(ctx); err != nil {
		return err
	}
	if len(w.checks) == 0 {
		w.emit(Event{Kind: EventMeasured, Checks: w.results()})
		return w.judgeErrors()
	}
	now := w.clock.Now()
	vars := config.Vars{
		Selector:    w.cfg.Metrics.Selector,
		SinceDeploy: now.Sub(w.deploy.StartedAt),
		SinceWarmup: now.Sub(w.judgeFrom),
		Platform:    w.platformVars(ctx, false),
	}
	verdicts := make(map[*check]judge.Verdict, len(w.checks))
	var mu sync.Mutex
	w.parallel(ctx, func(ctx context.Context, c *check) {
		if c.frozen {
			return
		}
		v := vars
		v.Window = c.window
		verdict := c.measure(ctx, w.source, v, now)
		mu.Lock()
		verdicts[c] = verdict
		mu.Unlock()
	})
	if ctx.Err() != nil {
		return errStopped
	}
	var failed *check
	for _, c := range w.checks {
		v, ok := verdicts[c]
		if !ok {
			continue
		}
		prev := c.result.Verdict
		c.tracker.Observe(v.Status)
		vv := vars
		vv.Window = c.window
		c.record(v, vv, now)
		if v.Status == judge.Fail || v.Status == judge.Warn && prev != judge.Warn {
			w.emit(Event{Kind: EventBreached, Check: c.result, Message: c.cfg.Name + ": " + v.Reason})
		}
		if c.tracker.Failed() && failed == nil {
			failed = c
		}
	}
	w.emit(Event{Kind: EventMeasured, Checks: w.results()})
	if failed != nil {
		return &failure{reason: failed.cfg.Name + ": " + failed.result.Reason, check: failed}
	}
	return w.judgeErrors()
}

// judgeErrors ends the watch as inconclusive once no check can measure.
func (w *run) judgeErrors() error {
	if len(w.checks) == 0 {
		if w.pods != nil && w.pods.tracker.GaveUp() {
			return &inconclusive{reason: "could not read the workload's health: " + w.pods.result.Reason}
		}
		return nil
	}
	if !slices.ContainsFunc(w.checks, func(c *check) bool { return c.tracker.GaveUp() }) {
		return nil
	}
	for _, c := range w.checks {
		if !c.tracker.GaveUp() && c.tracker.Judged() {
			return nil
		}
		if !c.tracker.GaveUp() && !c.frozen && c.tracker.ErrStreak() == 0 {
			return nil // still measuring (no data so far, but no errors)
		}
	}
	var reasons []string
	for _, c := range w.checks {
		if c.tracker.GaveUp() {
			reasons = append(reasons, fmt.Sprintf("%s: %s", c.cfg.Name, c.result.Reason))
		}
	}
	return &inconclusive{reason: "the checks could not measure: " + strings.Join(reasons, "; ")}
}

// --- helpers ----------------------------------------------------------

// parallel runs f for every check at once, each bounded by the query
// timeout.
func (w *run) parallel(ctx context.Context, f func(context.Context, *check)) {
	var wg sync.WaitGroup
	for _, c := range w.checks {
		wg.Go(func() {
			qctx, cancel := w.queryContext(ctx)
			defer cancel()
			f(qctx, c)
		})
	}
	wg.Wait()
}

// queryContext bounds one round of queries: a hanging source must not
// stall the timeline beyond its own timeout and retries.
func (w *run) queryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	limit := 10 * time.Second
	if m := w.cfg.Metrics; m != nil && m.Prometheus != nil {
		limit = m.Prometheus.Timeout.D() * time.Duration(1+m.Prometheus.Retries)
	}
	limit = max(limit, w.cfg.Phases.Interval.D())
	return context.WithTimeoutCause(ctx, limit, fmt.Errorf("metric queries took longer than %s", limit))
}

func (w *run) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return errStopped
	case <-w.clock.After(d):
		return nil
	}
}

func (w *run) beginPhase(name string) {
	p := &PhaseRecord{Name: name, StartedAt: w.clock.Now()}
	w.report.Phases = append(w.report.Phases, p)
	w.current = p
	w.emit(Event{Kind: EventPhaseStarted})
}

func (w *run) endPhase(o Outcome, reason string) {
	p := w.current
	if p == nil || p.EndedAt != nil {
		return
	}
	now := w.clock.Now()
	p.EndedAt, p.Outcome, p.Reason = &now, o, reason
	w.emit(Event{Kind: EventPhaseEnded, Outcome: o, Message: reason})
}

func (w *run) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.log.Info(msg, "service", w.deploy.Service)
	w.emit(Event{Kind: EventNote, Message: msg})
}

func (w *run) emit(e Event) {
	e.Time = w.clock.Now()
	e.Elapsed = e.Time.Sub(w.began).Seconds()
	e.Service, e.Version = w.deploy.Service, w.deploy.Version
	if e.Phase == "" && w.current != nil {
		e.Phase = w.current.Name
	}
	w.observer.Event(e)
}

func (w *run) results() []*CheckResult {
	out := make([]*CheckResult, 0, len(w.checks)+1)
	if w.pods != nil {
		cp := *w.pods.result
		out = append(out, &cp)
	}
	for _, c := range w.checks {
		cp := *c.result
		out = append(out, &cp)
	}
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
