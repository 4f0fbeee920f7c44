package watch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
)

const issueConfig = `
service: api
environment: staging
target:
  command:
    deploy: "true"
    rollback: "true"
metrics:
  prometheus:
    url: http://127.0.0.1:9090
  selector: 'job="api"'
baseline:
  window: 2m
phases:
  warmup: 5s
  monitor: 40s
  interval: 2s
on_failure: rollback
`

func loadConfig(t testing.TB, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Load([]byte(issueConfig+extra), "deploywatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// loadSpec is the spec of the README's config, with extra YAML appended.
func loadSpec(t testing.TB, extra string) Spec {
	t.Helper()
	return SpecFor(loadConfig(t, extra))
}

type scenario struct {
	name        string
	before      profile
	after       profile
	extra       string
	seed        uint64
	want        Verdict
	wantCheck   string // the check whose failure decides
	wantRolled  bool
	maxDetectS  float64
	wantWarning string // a check that must end warn
	wantPhase   string // the phase that failed, when not the monitor
	// spec, when set, changes the spec after it is loaded.
	spec func(*Spec)
}

var good = profile{rps: 50, errRatio: 0.001, latency: 1}

func runScenario(t *testing.T, sc scenario) (*Report, *fakePlatform, []Event) {
	t.Helper()
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0}
	// Three minutes of history, then the deploy.
	clock.advance(3 * time.Minute)
	deployAt := clock.Now()
	src := newSim(sc.seed, t0, sc.before, sc.after, deployAt, 10*time.Minute)
	plat := &fakePlatform{running: "v1"}
	var events []Event
	spec := loadSpec(t, sc.extra)
	if sc.spec != nil {
		sc.spec(&spec)
	}
	eng := New(spec, src, plat, WithClock(clock), WithObserver(ObserverFunc(func(e Event) { events = append(events, e) })))
	rep := eng.Run(context.Background(), Request{Version: "v2", RunDeploy: true})
	return rep, plat, events
}

func TestScenarios(t *testing.T) {
	cases := []scenario{
		{name: "a good deploy ends stable", before: good, after: good, want: Stable},
		{name: "5% errors at 50 req/s is rolled back", before: good, after: profile{rps: 50, errRatio: 0.05, latency: 1},
			want: Failed, wantCheck: "error_rate", wantRolled: true, maxDetectS: 15},
		{name: "a 4x latency regression is rolled back", before: good, after: profile{rps: 50, errRatio: 0.001, latency: 4},
			want: Failed, wantCheck: "latency_p99", wantRolled: true, maxDetectS: 15},
		{name: "traffic that stops is rolled back", before: good, after: profile{silent: true},
			want: Failed, wantCheck: "request_rate", wantRolled: true, maxDetectS: 15},
		{name: "errors already at 2% before an unchanged deploy are not blamed on it",
			before: profile{rps: 50, errRatio: 0.02, latency: 1}, after: profile{rps: 50, errRatio: 0.02, latency: 1},
			want: Stable, wantWarning: "error_rate"},
		{name: "2% before and 8% after is blamed",
			before: profile{rps: 50, errRatio: 0.02, latency: 1}, after: profile{rps: 50, errRatio: 0.08, latency: 1},
			want: Failed, wantCheck: "error_rate", wantRolled: true},
		{name: "traffic that stops is rolled back with a control group too", before: good, after: profile{silent: true},
			want: Failed, wantRolled: true, maxDetectS: 15, spec: func(s *Spec) { s.Metrics.Control = `job="control"` }},
		{name: "crash-level errors fail inside the warm-up", before: good, after: profile{rps: 50, errRatio: 0.3, latency: 1},
			want: Failed, wantCheck: "error_rate", wantRolled: true, maxDetectS: 3, wantPhase: "warmup"},
		{name: "a warm-up stumble is not blamed on the release", before: good,
			after: profile{rps: 50, errRatio: 0.001, latency: 1, coldErrRatio: 0.05, coldFor: 4 * time.Second}, want: Stable},
		{name: "with failure_limit 1, 4% errors fail at the first failing look", before: good,
			after: profile{rps: 50, errRatio: 0.04, latency: 1}, extra: "judge:\n  failure_limit: 1\n",
			want: Failed, wantCheck: "error_rate", wantRolled: true, maxDetectS: 10},
	}
	for _, sc := range cases {
		t.Run(sc.name, func(t *testing.T) {
			rep, plat, _ := runScenario(t, sc)
			if rep.Verdict != sc.want {
				t.Fatalf("verdict %s (%s), want %s", rep.Verdict, rep.Reason, sc.want)
			}
			if got := len(plat.rollbacks) > 0; got != sc.wantRolled {
				t.Fatalf("rolled back = %v, want %v", got, sc.wantRolled)
			}
			if sc.wantCheck != "" {
				c := findCheck(t, rep, sc.wantCheck)
				if c.Verdict != judge.Fail || c.Query == "" || c.Value == nil || c.Rule == "" || c.Samples == nil {
					t.Fatalf("decisive check lacks evidence: %+v", c)
				}
				if !strings.HasPrefix(rep.Reason, sc.wantCheck+": ") {
					t.Errorf("reason %q does not name %s", rep.Reason, sc.wantCheck)
				}
				if rep.DetectedAt == nil {
					t.Fatal("detected_at missing")
				}
				wantPhase := cmp.Or(sc.wantPhase, "monitor")
				if i := slices.IndexFunc(rep.Phases, func(p *PhaseRecord) bool { return p.Outcome == OutcomeFailed }); i < 0 || rep.Phases[i].Name != wantPhase {
					t.Errorf("phases %+v: want %s to have failed", rep.Phases, wantPhase)
				}
				if sc.maxDetectS > 0 {
					if d := rep.DetectedAt.Sub(rep.Deploy.StartedAt).Seconds(); d > sc.maxDetectS {
						t.Errorf("detected %.1fs after the deploy, want within %.0fs", d, sc.maxDetectS)
					}
				}
			}
			if sc.wantRolled {
				if len(plat.rollbacks) != 1 || plat.rollbacks[0].PreviousVersion != "v1" || plat.rollbacks[0].Version != "v2" {
					t.Fatalf("rollbacks = %+v, want one to v1", plat.rollbacks)
				}
				if rb := rep.Rollback; rb == nil || !rb.Performed || !rb.OK || rb.Revision != "v1" || rb.At == nil {
					t.Fatalf("rollback record = %+v", rep.Rollback)
				}
			}
			if sc.wantWarning != "" {
				c := findCheck(t, rep, sc.wantWarning)
				if c.Verdict != judge.Warn || !c.BreachingBefore {
					t.Errorf("%s = %s (breaching before %v), want a breaching-before warning: %s", c.Name, c.Verdict, c.BreachingBefore, c.Reason)
				}
			}
		})
	}
}

func TestPausePolicy(t *testing.T) {
	sc := scenario{before: good, after: profile{rps: 50, errRatio: 0.2, latency: 1}}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0.Add(3 * time.Minute)}
	src := newSim(1, t0, sc.before, sc.after, clock.Now(), 10*time.Minute)
	plat := &fakePlatform{running: "v1"}
	spec := loadSpec(t, "")
	spec.OnFailure = config.PolicyPause
	rep := New(spec, src, plat, WithClock(clock)).Run(context.Background(), Request{Version: "v2", RunDeploy: true})
	if rep.Verdict != Failed || plat.pauses != 1 || len(plat.rollbacks) != 0 {
		t.Fatalf("verdict %s pauses %d rollbacks %d", rep.Verdict, plat.pauses, len(plat.rollbacks))
	}
	if rep.Rollback == nil || rep.Rollback.Performed || rep.Rollback.Policy != "pause" {
		t.Errorf("rollback record = %+v", rep.Rollback)
	}
	if p := rep.phase(PhasePause); p == nil || p.Outcome != OutcomePassed {
		t.Errorf("pause phase %+v", p)
	}
}

// TestLowTrafficIsNotRolledBack runs a healthy 1 req/s service with 0.5%
// errors under twenty random seeds: noise must never roll it back.
func TestLowTrafficIsNotRolledBack(t *testing.T) {
	slow := profile{rps: 1, errRatio: 0.005, latency: 1}
	for seed := uint64(1); seed <= 20; seed++ {
		rep, plat, _ := runScenario(t, scenario{before: slow, after: slow, seed: seed})
		if rep.Verdict != Stable || len(plat.rollbacks) > 0 {
			t.Fatalf("seed %d: verdict %s: %s", seed, rep.Verdict, rep.Reason)
		}
	}
}

func TestSourceDownMidWatchIsInconclusive(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0.Add(3 * time.Minute)}
	src := newSim(1, t0, good, good, clock.Now(), 10*time.Minute)
	src.failAfter = clock.Now().Add(15 * time.Second)
	plat := &fakePlatform{running: "v1"}
	rep := New(loadSpec(t, ""), src, plat, WithClock(clock)).Run(context.Background(), Request{Version: "v2", RunDeploy: true})
	if rep.Verdict != Inconclusive || len(plat.rollbacks) != 0 {
		t.Fatalf("verdict %s (%s), rollbacks %d; want inconclusive without rollback", rep.Verdict, rep.Reason, len(plat.rollbacks))
	}
	if !strings.Contains(rep.Reason, "connection refused") {
		t.Errorf("reason %q does not say what failed", rep.Reason)
	}
	if rep.Verdict.ExitCode() != 3 {
		t.Errorf("exit code %d", rep.Verdict.ExitCode())
	}
	// Configured to roll back when it cannot judge, it does.
	spec := loadSpec(t, "on_inconclusive: rollback\n")
	clock = &fakeClock{now: t0.Add(3 * time.Minute)}
	src.failAfter = clock.Now().Add(15 * time.Second)
	rep = New(spec, src, plat, WithClock(clock)).Run(context.Background(), Request{Version: "v2", RunDeploy: true})
	if rep.Verdict != Inconclusive || len(plat.rollbacks) != 1 {
		t.Fatalf("with on_inconclusive: rollback, verdict %s rollbacks %d", rep.Verdict, len(plat.rollbacks))
	}
}

func TestDeployCommandFailureRollsBack(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0.Add(3 * time.Minute)}
	plat := &fakePlatform{running: "v1", deployErr: errors.New("deploy hook exited 2")}
	rep := New(loadSpec(t, ""), newSim(1, t0, good, good, clock.Now(), 10*time.Minute), plat, WithClock(clock)).
		Run(context.Background(), Request{Version: "v2", RunDeploy: true})
	if rep.Verdict != Failed || len(plat.rollbacks) != 1 || !strings.Contains(rep.Reason, "deploy command failed") {
		t.Fatalf("verdict %s (%s) rollbacks %d", rep.Verdict, rep.Reason, len(plat.rollbacks))
	}
	if p := rep.phase(PhaseRollout); p.Outcome != OutcomeFailed {
		t.Errorf("rollout outcome %s", p.Outcome)
	}
}

func TestRolloutTimeout(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0.Add(3 * time.Minute)}
	plat := &fakePlatform{running: "v1", done: func(int) bool { return false }}
	spec := loadSpec(t, "")
	spec.Phases.Rollout = 30 * time.Second
	rep := New(spec, newSim(1, t0, good, good, clock.Now(), 10*time.Minute), plat, WithClock(clock)).
		Run(context.Background(), Request{Version: "v2", RunDeploy: true})
	if rep.Verdict != Failed || !strings.Contains(rep.Reason, "did not complete within 30s") || !strings.Contains(rep.Reason, "replicas updated") {
		t.Fatalf("verdict %s: %s", rep.Verdict, rep.Reason)
	}
}

func TestTimelineAndEvidence(t *testing.T) {
	rep, _, events := runScenario(t, scenario{before: good, after: good})
	var names []string
	for _, p := range rep.Phases {
		names = append(names, p.Name)
		if p.EndedAt == nil || p.Outcome == "" {
			t.Errorf("phase %s not closed: %+v", p.Name, p)
		}
	}
	if got := strings.Join(names, ","); got != "start,rollout,warmup,verify,monitor,stable" {
		t.Errorf("phases %s", got)
	}
	if rep.Settings.ScrapeInterval != "1s" || rep.Settings.ScrapeIntervalSource != "measured" || rep.Settings.Window != "4s" {
		t.Errorf("settings %+v: want a measured 1s scrape and a 4s window", rep.Settings)
	}
	// A source that answers at once is looked at every scrape.
	if rep.Settings.Look != "1s" {
		t.Errorf("look every %q, want every 1s scrape", rep.Settings.Look)
	}
	if rep.Settings.BaselineHistory != "2m" {
		t.Errorf("baseline history %s", rep.Settings.BaselineHistory)
	}
	for _, c := range rep.Checks {
		if c.Baseline == nil || c.Measurements != 40 || c.Query == "" {
			t.Errorf("check %s: baseline %v, %d measurements, query %q", c.Name, c.Baseline, c.Measurements, c.Query)
		}
	}
	if er := findCheck(t, rep, "error_rate"); !strings.Contains(er.Query, `status=~"5.."`) || !strings.Contains(er.Query, "[") {
		t.Errorf("evidence query %q", er.Query)
	}
	if len(rep.Skipped) != 2 {
		t.Errorf("skipped %+v", rep.Skipped)
	}
	if events[0].Kind != event.PhaseStarted || events[len(events)-1].Kind != event.Verdict {
		t.Errorf("events begin with %s and end with %s", events[0].Kind, events[len(events)-1].Kind)
	}
}

func TestShortHistoryUsesWhatExists(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0.Add(30 * time.Second)}
	src := newSim(1, t0, good, profile{rps: 50, errRatio: 0.05, latency: 1}, clock.Now(), 10*time.Minute)
	plat := &fakePlatform{running: "v1"}
	rep := New(loadSpec(t, ""), src, plat, WithClock(clock)).Run(context.Background(), Request{Version: "v2", RunDeploy: true})
	if rep.Settings.BaselineHistory != "30s" || rep.Verdict != Failed {
		t.Fatalf("history %s verdict %s", rep.Settings.BaselineHistory, rep.Verdict)
	}
	if b := findCheck(t, rep, "request_rate").Baseline; b == nil || math.Abs(*b-50) > 8 {
		t.Errorf("baseline rate %v, want about 50/s from 30s of history", b)
	}
}

func TestInterruptStopsWithoutRollback(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0.Add(3 * time.Minute)}
	src := newSim(1, t0, good, good, clock.Now(), 10*time.Minute)
	plat := &fakePlatform{running: "v1"}
	ctx, cancel := context.WithCancel(context.Background())
	eng := New(loadSpec(t, ""), src, plat, WithClock(clock), WithObserver(ObserverFunc(func(e Event) {
		if e.Kind == event.Measured {
			cancel()
		}
	})))
	rep := eng.Run(ctx, Request{Version: "v2", RunDeploy: true})
	if rep.Verdict != Inconclusive || len(plat.rollbacks) != 0 || !strings.Contains(rep.Reason, "stopped") {
		t.Fatalf("verdict %s (%s) rollbacks %d", rep.Verdict, rep.Reason, len(plat.rollbacks))
	}
	if p := rep.phase(PhaseMonitor); p.Outcome != OutcomeInterrupted {
		t.Errorf("monitor outcome %s", p.Outcome)
	}
}

// TestRollbackSurvivesInterrupt: a stop that arrives while the rollback
// runs does not cut it short; only Abort does, and either way the report
// says what happened.
func TestRollbackSurvivesInterrupt(t *testing.T) {
	for _, abort := range []bool{false, true} {
		t.Run(fmt.Sprintf("abort=%v", abort), func(t *testing.T) {
			t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			clock := &fakeClock{now: t0.Add(3 * time.Minute)}
			src := newSim(1, t0, good, profile{rps: 50, errRatio: 0.3, latency: 1}, clock.Now(), 10*time.Minute)
			ctx, cancel := context.WithCancel(context.Background())
			abortCtx, abortNow := context.WithCancel(context.Background())
			plat := &fakePlatform{running: "v1", rollbackFn: func(rctx context.Context) error {
				cancel() // the first Ctrl-C arrives mid-rollback
				if abort {
					abortNow()
				}
				select {
				case <-rctx.Done():
					return rctx.Err()
				case <-time.After(50 * time.Millisecond):
					return nil
				}
			}}
			rep := New(loadSpec(t, ""), src, plat, WithClock(clock), WithAbort(abortCtx)).Run(ctx, Request{Version: "v2", RunDeploy: true})
			if rep.Verdict != Failed || !rep.Rollback.Performed {
				t.Fatalf("verdict %s rollback %+v", rep.Verdict, rep.Rollback)
			}
			if rep.Rollback.OK == abort {
				t.Fatalf("rollback ok = %v with abort = %v: %+v", rep.Rollback.OK, abort, rep.Rollback)
			}
			if abort && !strings.Contains(rep.Rollback.Error, "aborted") {
				t.Errorf("error %q does not say it was aborted", rep.Rollback.Error)
			}
		})
	}
}

func findCheck(t *testing.T, r *Report, name string) *CheckResult {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %s in %+v", name, r.Checks)
	return nil
}

func TestPlatformHealth(t *testing.T) {
	crash := func(from int) func(int) (Health, error) {
		return func(n int) (Health, error) {
			if n >= from {
				return Health{Problems: []string{"pod api-1 container api: CrashLoopBackOff (3 restarts since the deploy)"}, NewShare: 0.5}, nil
			}
			return Health{Summary: "2/2 new pods ready", NewShare: 1}, nil
		}
	}
	cases := []struct {
		name     string
		health   func(int) (Health, error)
		decline  bool
		want     Verdict
		rolled   bool
		inReason string
	}{
		{"healthy pods end stable", crash(1 << 30), false, Stable, false, ""},
		{"a crash loop during warm-up fails at once", crash(3), false, Failed, true, "pods: pod api-1 container api: CrashLoopBackOff"},
		{"a declined undo is reported, not performed", crash(2), true, Failed, false, "CrashLoopBackOff"},
		{"an unreachable platform is inconclusive without metrics", func(int) (Health, error) { return Health{}, errors.New("connection refused") }, false, Inconclusive, false, "connection refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Load([]byte(`service: api
target:
  kubernetes:
    deployment: api
phases:
  warmup: 5s
  monitor: 10s
  interval: 1s
`), "k.yaml")
			if err != nil {
				t.Fatal(err)
			}
			clock := &fakeClock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
			p := &healthyPlatform{fakePlatform: &fakePlatform{running: "3"}, health: c.health, decline: c.decline}
			rep := New(SpecFor(cfg), nil, p, WithClock(clock)).Run(context.Background(), Request{Version: "v2", RunDeploy: true})
			if rep.Verdict != c.want || !strings.Contains(rep.Reason, c.inReason) {
				t.Fatalf("verdict %s (%s), want %s containing %q", rep.Verdict, rep.Reason, c.want, c.inReason)
			}
			switch {
			case c.want == Stable && rep.Rollback != nil:
				t.Errorf("a stable watch has a rollback record %+v", rep.Rollback)
			case c.want != Stable && rep.Rollback == nil:
				t.Errorf("a %s watch has no rollback record", rep.Verdict)
			case rep.Rollback != nil && rep.Rollback.Performed != c.rolled:
				t.Errorf("rollback %+v, performed want %v", rep.Rollback, c.rolled)
			}
			if c.decline && (rep.Rollback == nil || rep.Rollback.Note != "managed by Argo CD") {
				t.Errorf("declined rollback not reported: %+v", rep.Rollback)
			}
			if pods := findCheck(t, rep, PodsCheck); c.want == Stable && (pods.Verdict != judge.Pass || pods.Measurements == 0) {
				t.Errorf("pods check %+v", pods)
			}
		})
	}
}

// phase finds the last record of a phase.
func (r *Report) phase(name string) *PhaseRecord {
	for i := len(r.Phases) - 1; i >= 0; i-- {
		if r.Phases[i].Name == name {
			return r.Phases[i]
		}
	}
	return nil
}

// TestReportModeNeverFails: a check in mode: report is measured, shown and
// stored like any other, says when it would have failed, and never fails
// the deploy.
func TestReportModeNeverFails(t *testing.T) {
	extra := `checks:
  - name: error_rate
    type: ratio
    bad: 'sum(increase(http_requests_total{$selector,status=~"5.."}[$since_warmup]))'
    total: 'sum(increase(http_requests_total{$selector}[$since_warmup]))'
    fail: "> 1%"
    unit: percent
    mode: report
`
	rep, plat, events := runScenario(t, scenario{before: good, after: profile{rps: 50, errRatio: 0.3, latency: 1}, extra: extra})
	if rep.Verdict != Stable || len(plat.rollbacks) != 0 {
		t.Fatalf("verdict %s (%s), %d rollbacks: want stable, none", rep.Verdict, rep.Reason, len(plat.rollbacks))
	}
	c := findCheck(t, rep, "error_rate")
	if c.Verdict != judge.Fail || c.Mode != "report" || c.Test != "sequential" {
		t.Errorf("check = %s, mode %q, test %q: want a recorded failure in report mode, judged sequentially", c.Verdict, c.Mode, c.Test)
	}
	if !strings.Contains(rep.Reason, "would have failed (mode: report): error_rate") {
		t.Errorf("reason %q does not say the check would have failed", rep.Reason)
	}
	if !slices.ContainsFunc(events, func(e Event) bool {
		return e.Kind == event.Breached && strings.Contains(e.Message, "mode: report")
	}) {
		t.Error("no breach event says the check is in report mode")
	}
}

// TestDetectabilitySaysWhatAWatchCanSee: at 50 req/s the default checks
// can judge within the 40s monitor; at 0.3 req/s the error share cannot,
// and the watch says so before any verdict, with what to change.
func TestDetectabilitySaysWhatAWatchCanSee(t *testing.T) {
	rep, _, _ := runScenario(t, scenario{before: good, after: good})
	for _, d := range rep.Detectability {
		if !d.CanJudge {
			t.Errorf("at 50 req/s %s cannot judge: %s", d.Check, d.Summary)
		}
	}
	er := detectabilityOf(t, rep, "error_rate")
	if er.Smallest == nil || *er.Smallest > 0.03 || er.RegressionSeconds == nil || *er.RegressionSeconds > 10 {
		t.Errorf("error_rate at 50 req/s: %+v, want a share under 3%% provable and 5%% within 10s", er)
	}

	quiet := profile{rps: 0.3, errRatio: 0.001, latency: 1}
	rep, _, events := runScenario(t, scenario{before: quiet, after: quiet})
	er = detectabilityOf(t, rep, "error_rate")
	if er.CanJudge || !strings.Contains(er.Summary, "raise phases.monitor to") {
		t.Errorf("error_rate at 0.3 req/s: %+v, want it unable to judge, with advice", er)
	}
	if !slices.ContainsFunc(events, func(e Event) bool { return e.Kind == event.Note && e.Message == er.Summary }) {
		t.Error("the watch did not say the error share cannot be judged")
	}

	// Synthetic traffic is counted, also for a service that counted
	// nothing before the deploy.
	spec := loadSpec(t, "")
	spec.Metrics.SyntheticRate = 20
	silent := newCheck(spec.Checks[0], 4*time.Second) // error_rate, its baseline without data
	if er = (&run{Engine: &Engine{spec: spec}}).detectability(silent); !er.CanJudge || !strings.Contains(er.Summary, "synthetic traffic") {
		t.Errorf("error_rate of a silent service with 20 req/s of synthetic traffic: %+v, want it judged on that traffic", er)
	}

	// A sliding window sees one window's requests at a look, not the
	// monitor's.
	sliding := `checks:
  - name: error_rate
    type: ratio
    bad: 'sum(increase(http_requests_total{$selector,status=~"5.."}[$window]))'
    total: 'sum(increase(http_requests_total{$selector}[$window]))'
    fail: "> 1%"
`
	rep, _, _ = runScenario(t, scenario{before: good, after: good, extra: sliding})
	er = detectabilityOf(t, rep, "error_rate")
	if er.Events == nil || *er.Events > 300 || !strings.Contains(er.Summary, "in one 4s window") {
		t.Errorf("a sliding error share: %+v, want one 4s window's ~200 requests", er)
	}
}

func detectabilityOf(t *testing.T, rep *Report, name string) Detectability {
	t.Helper()
	for _, d := range rep.Detectability {
		if d.Check == name {
			return d
		}
	}
	t.Fatalf("no detectability for %s in %+v", name, rep.Detectability)
	return Detectability{}
}

// TestBaselineOffset: the baseline window ends baseline.offset before the
// deploy. The simulated source holds 3 minutes of history; a 10-minute
// window that ends now gets all 3, one that ends a minute ago only 2.
func TestBaselineOffset(t *testing.T) {
	for _, c := range []struct {
		offset      time.Duration
		wantHistory string
	}{{0, "3m"}, {time.Minute, "2m"}} {
		rep, _, _ := runScenario(t, scenario{before: good, after: good, spec: func(s *Spec) {
			s.Metrics.BaselineWindow, s.Metrics.BaselineOffset = 10*time.Minute, c.offset
		}})
		if rep.Verdict != Stable || rep.Settings.BaselineHistory != c.wantHistory {
			t.Errorf("offset %s: %s with %s of baseline history, want stable with %s", c.offset, rep.Verdict, rep.Settings.BaselineHistory, c.wantHistory)
		}
		if want := config.FormatDuration(c.offset); c.offset > 0 && rep.Settings.BaselineOffset != want {
			t.Errorf("report's baseline offset %q, want %q", rep.Settings.BaselineOffset, want)
		}
	}
}
