package watch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/metrics"
)

// world is what lives outside deploywatch during a watch: the service and
// its metrics, the platform, the clock. A killed engine and the one that
// resumes it share it, as two processes share the real world.
type world struct {
	clock *fakeClock
	src   *sim
	fake  *fakePlatform
	plat  Platform
}

// killCase is a watch to kill at every point and resume.
type killCase struct {
	name string
	// requests are the simulated service's, generated once per case: every
	// world of the case sees the same traffic.
	requests      *[]request
	before, after profile
	// control, when set, is the control group after the deploy (as good
	// before it), and the spec has baseline.control.
	control *profile
	run     bool // run (deploy) rather than watch
	// sourceDownAfter makes the metric source fail this long after the
	// deploy (0: never).
	sourceDownAfter time.Duration
	// health gives the platform a health report (Kubernetes-like).
	health func(n int) (Health, error)
	// gap is how long nothing watches between the kill and the resume.
	gap time.Duration
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func (kc killCase) world() *world {
	clock := &fakeClock{now: t0.Add(3 * time.Minute)}
	deployAt := clock.Now()
	if kc.requests == nil || *kc.requests == nil {
		gen := newSim(7, t0, kc.before, kc.after, deployAt, 16*time.Minute).requests
		if kc.requests != nil {
			*kc.requests = gen
		}
		kc.requests = &gen
	}
	w := &world{clock: clock, src: (&sim{t0: t0, requests: *kc.requests}).index()}
	if kc.control != nil {
		w.src.control = newSim(8, t0, good, *kc.control, deployAt, 16*time.Minute)
	}
	if kc.sourceDownAfter > 0 {
		w.src.failAfter = deployAt.Add(kc.sourceDownAfter)
	}
	w.fake = &fakePlatform{running: "v1"}
	if !kc.run {
		w.fake.running = "v2" // someone else deployed it
	}
	w.plat = w.fake
	if kc.health != nil {
		w.plat = &healthyPlatform{fakePlatform: w.fake, health: kc.health}
	}
	return w
}

// engine builds the engine of one process: it saves every checkpoint's
// encoded state in *saved, and dies at k's kill point.
func (kc killCase) engine(t *testing.T, w *world, k *killer, saved *[]byte) *Engine {
	w.clock.kill, w.fake.kill = k, k
	spec := loadSpec(t, "")
	if kc.control != nil {
		spec.Metrics.Control = `job="control"`
	}
	return New(spec, w.src, w.plat, WithClock(w.clock), WithCheckpoint(CheckpointFunc(func(s *State) error {
		b, err := s.Encode()
		if err != nil {
			t.Errorf("encoding the state: %v", err)
			return err
		}
		*saved = b
		k.point()
		return nil
	})))
}

func (kc killCase) request() Request {
	return Request{Version: "v2", RunDeploy: kc.run, Origin: []byte(`{"test":true}`)}
}

// TestResumeFromEveryKillPoint kills the engine at every point a process
// can die (each checkpoint, each platform effect, each wait), resumes it
// in a new engine from the state saved last, and checks that the resumed
// watch reaches the verdict and the rollback record of an uninterrupted
// one, with the deploy command run exactly once and the rollback at most
// once.
func TestResumeFromEveryKillPoint(t *testing.T) {
	bad := profile{rps: 50, errRatio: 0.05, latency: 1}
	crashAt := func(look int) func(int) (Health, error) {
		return func(n int) (Health, error) {
			if n >= look {
				return Health{Problems: []string{"pod api-1 container api: CrashLoopBackOff"}, NewShare: 0.5}, nil
			}
			return Health{Summary: "2/2 new pods ready", NewShare: 1}, nil
		}
	}
	var cases []killCase
	for _, run := range []bool{true, false} {
		kind := map[bool]string{true: "run", false: "watch"}[run]
		for _, gap := range []time.Duration{0, 10 * time.Minute} {
			suffix := fmt.Sprintf("%s, resumed after %s", kind, config.FormatDuration(gap))
			cases = append(cases,
				killCase{name: "stable, " + suffix, before: good, after: good, run: run, gap: gap},
				killCase{name: "failed and rolled back, " + suffix, before: good, after: bad, run: run, gap: gap},
				killCase{name: "inconclusive, " + suffix, before: good, after: good, run: run, gap: gap, sourceDownAfter: 20 * time.Second},
				killCase{name: "pods crash in monitor, " + suffix, before: good, after: good, run: run, gap: gap, health: crashAt(12)},
			)
			if gap == 0 {
				// Beyond the line to the end, and a control group that
				// cannot tell whose it is in the monitor's time. (Resumed
				// after a gap, the watch counts more than the uninterrupted
				// one had, and may decide.)
				cases = append(cases, killCase{name: "inconclusive, the control group undecided, " + suffix, before: good,
					after: profile{rps: 50, errRatio: 0.03, latency: 1}, control: &profile{rps: 50, errRatio: 0.012, latency: 1}, run: run})
			}
		}
	}
	for _, kc := range cases {
		t.Run(kc.name, func(t *testing.T) {
			t.Parallel()
			kc.requests = new([]request)
			ref := kc.world()
			want := kc.engine(t, ref, nil, new([]byte)).Run(context.Background(), kc.request())
			_, refRollbacks := ref.fake.counts()
			if kc.name[:6] == "stable" && want.Verdict != Stable || strings.HasPrefix(kc.name, "failed") && want.Verdict != Failed ||
				strings.HasPrefix(kc.name, "inconclusive") && want.Verdict != Inconclusive {
				t.Fatalf("the uninterrupted watch ended %s: %s", want.Verdict, want.Reason)
			}
			points := 0
			for at := 1; ; at++ {
				w := kc.world()
				k := &killer{at: at}
				var saved []byte
				eng := kc.engine(t, w, k, &saved)
				done := make(chan struct{})
				var rep *Report
				go func() {
					defer close(done)
					rep = eng.Run(context.Background(), kc.request())
				}()
				<-done
				if !k.killed {
					if rep.Verdict != want.Verdict {
						t.Fatalf("an unkilled run ended %s, want %s", rep.Verdict, want.Verdict)
					}
					break
				}
				points++
				deploysBefore, _ := w.fake.counts()
				w.clock.advance(kc.gap)
				st, err := DecodeState(saved)
				if err != nil {
					t.Fatalf("kill point %d: the saved state: %v", at, err)
				}
				got, err := kc.engine(t, w, nil, &saved).Resume(context.Background(), st)
				if err != nil {
					t.Fatalf("kill point %d: resume: %v", at, err)
				}
				where := fmt.Sprintf("killed at point %d (in %s)", at, lastPhase(st))
				deploys, rollbacks := w.fake.counts()
				if st.DeployBegan && deploysBefore == 0 {
					// Killed between saving "the deploy began" and starting
					// it: the command is never started again, and since the
					// old version still runs, it is not judged as the new.
					if deploys != 0 || rollbacks != 0 || got.Verdict != Inconclusive || !strings.Contains(got.Reason, "v1, the version before it, still runs") {
						t.Errorf("%s: %d deploys, %d rollbacks, %s (%s); want nothing done and inconclusive", where, deploys, rollbacks, got.Verdict, got.Reason)
					}
					continue
				}
				sameOutcome(t, where, got, want)
				if wantDeploys := map[bool]int{true: 1, false: 0}[kc.run]; deploys != wantDeploys {
					t.Errorf("%s: the deploy ran %d times, want %d", where, deploys, wantDeploys)
				}
				if rollbacks != refRollbacks {
					t.Errorf("%s: %d rollbacks, want %d", where, rollbacks, refRollbacks)
				}
				if ended := st.Report.Verdict.Ended(); ended != (len(got.Resumes) == 0) {
					t.Errorf("%s: resumes %v of a watch saved %s", where, got.Resumes, st.Report.Verdict)
				}
				for _, p := range got.Phases {
					if p.EndedAt == nil || p.Outcome == "" {
						t.Errorf("%s: phase %s left open", where, p.Name)
					}
				}
			}
			if points < 20 {
				t.Fatalf("only %d kill points: the harness is not killing", points)
			}
			t.Logf("%d kill points, each resumed to %s", points, want.Verdict)
		})
	}
}

// sameOutcome compares what a resumed watch decided with the uninterrupted
// one: the verdict, the deciding check, and the rollback record.
func sameOutcome(t *testing.T, where string, got, want *Report) {
	t.Helper()
	if got.Verdict != want.Verdict {
		t.Fatalf("%s: verdict %s (%s), want %s (%s)", where, got.Verdict, got.Reason, want.Verdict, want.Reason)
	}
	gotCheck, _, _ := strings.Cut(got.Reason, ":")
	wantCheck, _, _ := strings.Cut(want.Reason, ":")
	if got.Verdict == Failed && gotCheck != wantCheck {
		t.Errorf("%s: decided by %q, want %q", where, got.Reason, want.Reason)
	}
	switch g, w := got.Rollback, want.Rollback; {
	case (g == nil) != (w == nil):
		t.Errorf("%s: rollback record %+v, want %+v", where, g, w)
	case g != nil && (g.Performed != w.Performed || g.OK != w.OK || g.Revision != w.Revision || g.Policy != w.Policy):
		t.Errorf("%s: rollback record %+v, want %+v", where, g, w)
	}
	if (got.DetectedAt == nil) != (want.DetectedAt == nil) {
		t.Errorf("%s: detected_at %v, want %v", where, got.DetectedAt, want.DetectedAt)
	}
}

func lastPhase(s *State) string {
	p := s.Report.Phases[len(s.Report.Phases)-1]
	if p.EndedAt != nil {
		return "after " + p.Name
	}
	return p.Name
}

// noFinisher is a platform that cannot tell whether a rollback finished.
type noFinisher struct{ p *fakePlatform }

func (n noFinisher) Current(ctx context.Context, d Deploy, begun bool) (string, error) {
	return n.p.Current(ctx, d, begun)
}
func (n noFinisher) Deploy(ctx context.Context, d Deploy) error { return n.p.Deploy(ctx, d) }
func (n noFinisher) Progress(ctx context.Context, d Deploy) (Progress, error) {
	return n.p.Progress(ctx, d)
}
func (n noFinisher) Rollback(ctx context.Context, d Deploy) (RollbackOutcome, error) {
	return n.p.Rollback(ctx, d)
}
func (n noFinisher) Pause(ctx context.Context, d Deploy) error { return n.p.Pause(ctx, d) }

// A platform that cannot finish a rollback is never asked to roll back a
// second time: the report says the outcome is unknown.
func TestResumedRollbackIsNeverRunTwice(t *testing.T) {
	kc := killCase{before: good, after: profile{rps: 50, errRatio: 0.3, latency: 1}, run: true}
	w := kc.world()
	w.plat = noFinisher{w.fake}
	var saved []byte
	var killed bool
	eng := kc.engine(t, w, nil, &saved)
	// Die inside the rollback, after the platform acted.
	w.fake.rollbackFn = func(context.Context) error { killed = true; panicExit(); return nil }
	done := make(chan struct{})
	go func() {
		defer close(done)
		eng.Run(context.Background(), kc.request())
	}()
	<-done
	if !killed {
		t.Fatal("the rollback never ran")
	}
	w.fake.rollbackFn = nil
	st, err := DecodeState(saved)
	if err != nil {
		t.Fatal(err)
	}
	if lastPhase(st) != PhaseRollback {
		t.Fatalf("saved in %s, want inside the rollback", lastPhase(st))
	}
	rep, err := kc.engine(t, w, nil, &saved).Resume(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if _, n := w.fake.counts(); n != 1 {
		t.Fatalf("%d rollbacks, want the one before the kill", n)
	}
	if rep.Verdict != Failed || rep.Rollback == nil || rep.Rollback.OK || !strings.Contains(rep.Rollback.Error, "not run twice") {
		t.Fatalf("verdict %s, rollback %+v: want failed with an unknown rollback", rep.Verdict, rep.Rollback)
	}
}

// panicExit ends the calling goroutine as a kill would.
func panicExit() { (&killer{at: 1}).point() }

// A watch that had ended is returned as it was: nothing is asked of the
// platform or the source.
func TestResumeOfAnEndedWatchTouchesNothing(t *testing.T) {
	kc := killCase{before: good, after: profile{rps: 50, errRatio: 0.3, latency: 1}, run: true}
	w := kc.world()
	var saved []byte
	want := kc.engine(t, w, nil, &saved).Run(context.Background(), kc.request())
	st, err := DecodeState(saved)
	if err != nil {
		t.Fatal(err)
	}
	if st.Report.Verdict != Failed {
		t.Fatalf("the last state's verdict is %s, want the ended watch's", st.Report.Verdict)
	}
	w.src.failAfter = t0 // any query fails
	deploys, rollbacks := w.fake.counts()
	looks := w.fake.looks
	got, err := kc.engine(t, w, nil, &saved).Resume(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	d2, r2 := w.fake.counts()
	if got.Verdict != want.Verdict || got.Reason != want.Reason || d2 != deploys || r2 != rollbacks || w.fake.looks != looks {
		t.Fatalf("resume of an ended watch: %s (%s), deploys %d→%d, rollbacks %d→%d, looks %d→%d",
			got.Verdict, got.Reason, deploys, d2, rollbacks, r2, looks, w.fake.looks)
	}
}

// The report a checkpoint carries is whole at every step: the watch's
// phases so far with their timings, in progress until the verdict.
func TestCheckpointsCarryTheReportSoFar(t *testing.T) {
	kc := killCase{before: good, after: good, run: true}
	w := kc.world()
	var states []*State
	eng := New(loadSpec(t, ""), w.src, w.plat, WithClock(w.clock), WithCheckpoint(CheckpointFunc(func(s *State) error {
		states = append(states, s)
		return nil
	})))
	eng.Run(context.Background(), kc.request())
	var sawMonitor bool
	for i, s := range states {
		last := i == len(states)-1
		if got := s.Report.Verdict; last != (got == Stable) || !last && got != InProgress {
			t.Fatalf("checkpoint %d of %d: verdict %s", i+1, len(states), got)
		}
		if p := s.Report.Phases[len(s.Report.Phases)-1]; p.Name == PhaseMonitor && p.EndedAt == nil && !s.LastTick.IsZero() {
			sawMonitor = true
			for _, c := range s.Report.Checks {
				if c.Verdict == judge.StatusUnknown || c.Baseline == nil {
					t.Fatalf("checkpoint %d: check %s has no measurement or baseline: %+v", i+1, c.Name, c)
				}
			}
		}
	}
	if !sawMonitor {
		t.Fatal("no checkpoint during the monitor's ticks")
	}
	if n := len(states); n < 25 {
		t.Fatalf("%d checkpoints: want every phase change and every tick", n)
	}
	data, err := states[len(states)/2].Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 32<<10 {
		t.Errorf("a state is %d bytes: want kilobytes", len(data))
	}
}

func TestDecodeStateRefusesWhatItCannotResume(t *testing.T) {
	kc := killCase{before: good, after: good, run: true}
	w := kc.world()
	var saved []byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		kc.engine(t, w, &killer{at: 30}, &saved).Run(context.Background(), kc.request())
	}()
	<-done
	if _, err := DecodeState(saved); err != nil {
		t.Fatalf("a good state: %v", err)
	}
	cases := []struct {
		name string
		data string
		want error
		says string
	}{
		{"empty", "", ErrStateCorrupt, "empty"},
		{"truncated", string(saved[:len(saved)/2]), ErrStateCorrupt, "truncated or corrupt"},
		{"not JSON", "state_version: 1\n", ErrStateCorrupt, "truncated or corrupt"},
		{"no version", `{"report": {}}`, ErrStateCorrupt, "no state_version"},
		{"newer", strings.Replace(string(saved), `"state_version": 1`, `"state_version": 2`, 1), ErrStateNewer, "state_version 2"},
		{"unknown field", strings.Replace(string(saved), `"state_version": 1,`, `"state_version": 1, "surprise": true,`, 1), ErrStateCorrupt, "surprise"},
		{"no report", `{"state_version": 1, "began": "2026-11-25T12:00:00Z"}`, ErrStateCorrupt, "no report"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeState([]byte(c.data))
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("error %v, want %v saying %q", err, c.want, c.says)
			}
		})
	}
}

func TestResumeRefusesAnotherWatch(t *testing.T) {
	kc := killCase{before: good, after: good, run: true}
	w := kc.world()
	var saved []byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		kc.engine(t, w, &killer{at: 40}, &saved).Run(context.Background(), kc.request())
	}()
	<-done
	st, err := DecodeState(saved)
	if err != nil {
		t.Fatal(err)
	}
	other := loadSpec(t, "")
	other.Service = "web"
	if _, err := New(other, w.src, w.plat, WithClock(w.clock)).Resume(context.Background(), st); !errors.Is(err, ErrStateMismatch) || !strings.Contains(err.Error(), `"web"`) {
		t.Fatalf("another service: %v", err)
	}
	fewer := loadSpec(t, "")
	fewer.Checks = fewer.Checks[:1]
	if _, err := New(fewer, w.src, w.plat, WithClock(w.clock)).Resume(context.Background(), st); !errors.Is(err, ErrStateMismatch) {
		t.Fatalf("other checks: %v", err)
	}
	if d, _ := w.fake.counts(); d != 1 {
		t.Fatalf("%d deploys: a refused resume must do nothing", d)
	}
}

// A state that cannot be saved before the deploy stops the deploy: after a
// crash, nothing could tell that it had begun.
func TestNoDeployWithoutASavedState(t *testing.T) {
	kc := killCase{before: good, after: good, run: true}
	w := kc.world()
	saves := 0
	eng := New(loadSpec(t, ""), w.src, w.plat, WithClock(w.clock), WithCheckpoint(CheckpointFunc(func(s *State) error {
		saves++
		if s.DeployBegan {
			return errors.New("no space left on device")
		}
		return nil
	})))
	rep := eng.Run(context.Background(), kc.request())
	if d, _ := w.fake.counts(); d != 0 || rep.Verdict != Inconclusive || !strings.Contains(rep.Reason, "no space left on device") || !strings.Contains(rep.Reason, "nothing was deployed") {
		t.Fatalf("%d deploys, %s: %s", d, rep.Verdict, rep.Reason)
	}
}

// A deploy command stopped by Ctrl-C is not judged when the watch is
// resumed: it may have done half of its work.
func TestInterruptedDeployIsNotJudged(t *testing.T) {
	kc := killCase{before: good, after: good, run: true}
	w := kc.world()
	var saved []byte
	ctx, cancel := context.WithCancel(context.Background())
	w.fake.deployErr = errors.New("deploy hook: signal: terminated")
	eng := New(loadSpec(t, ""), w.src, &cancelOnDeploy{w.fake, cancel}, WithClock(w.clock), WithCheckpoint(CheckpointFunc(func(s *State) error {
		b, err := s.Encode()
		saved = b
		return err
	})))
	if rep := eng.Run(ctx, kc.request()); rep.Verdict != Inconclusive {
		t.Fatalf("interrupted: %s", rep.Verdict)
	}
	st, err := DecodeState(saved)
	if err != nil || !st.DeployInterrupted {
		t.Fatalf("the saved state: %v, interrupted %v", err, st != nil && st.DeployInterrupted)
	}
	w.fake.deployErr = nil
	rep, err := New(loadSpec(t, ""), w.src, w.plat, WithClock(w.clock)).Resume(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if d, r := w.fake.counts(); d != 1 || r != 0 || rep.Verdict != Inconclusive || !strings.Contains(rep.Reason, "stopped before it finished") {
		t.Fatalf("%d deploys, %d rollbacks, %s: %s", d, r, rep.Verdict, rep.Reason)
	}
}

// cancelOnDeploy stops the watch while the deploy command runs.
type cancelOnDeploy struct {
	*fakePlatform
	cancel context.CancelFunc
}

func (c *cancelOnDeploy) Deploy(ctx context.Context, d Deploy) error {
	c.cancel()
	return c.fakePlatform.Deploy(ctx, d)
}

// historyless is a source, like the embedded engine, that knows nothing
// from before it began collecting.
type historyless struct {
	*sim
	since time.Time
}

func (h historyless) CollectingSince() time.Time { return h.since }

func (h historyless) Query(ctx context.Context, expr string, at time.Time) (metrics.Vector, error) {
	if at.Before(h.since) {
		return metrics.Vector{}, nil
	}
	return h.sim.Query(ctx, expr, at)
}

// A watch on a source without history (the embedded engine), resumed by a
// process that began collecting late, does not take the time it cannot see
// for silence: a healthy deploy stays stable.
func TestResumeOnASourceWithoutHistory(t *testing.T) {
	kc := killCase{before: good, after: good, run: true}
	w := kc.world()
	var saved []byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		kc.engine(t, w, &killer{at: 25}, &saved).Run(context.Background(), kc.request())
	}()
	<-done
	st, err := DecodeState(saved)
	if err != nil {
		t.Fatal(err)
	}
	if lastPhase(st) != PhaseMonitor {
		t.Fatalf("killed in %s, want the monitor", lastPhase(st))
	}
	w.clock.advance(10 * time.Second)
	src := historyless{sim: w.src, since: w.clock.Now()}
	var notes []string
	rep, err := New(loadSpec(t, ""), src, w.plat, WithClock(w.clock), WithObserver(ObserverFunc(func(e Event) {
		if e.Kind == event.Note {
			notes = append(notes, e.Message)
		}
	}))).Resume(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != Stable {
		t.Fatalf("%s: %s", rep.Verdict, rep.Reason)
	}
	if !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "keeps no history from before this process") }) {
		t.Errorf("notes %q do not say what could not be measured", notes)
	}
}

// TestResumeOfAStateWithoutTheBaselineTime: a state saved before the
// baseline's end was kept resumes with it where it always is (the deploy's
// start, less baseline.offset), so a control group's baseline is still
// measured over the right window.
func TestResumeOfAStateWithoutTheBaselineTime(t *testing.T) {
	clock := &fakeClock{now: t0.Add(3 * time.Minute)}
	src := newSim(1, t0, good, good, clock.Now(), 10*time.Minute)
	var saved []byte
	e := New(loadSpec(t, ""), src, &fakePlatform{running: "v1"}, WithClock(clock), WithCheckpoint(CheckpointFunc(func(s *State) error {
		var err error
		saved, err = s.Encode()
		return err
	})))
	e.Run(context.Background(), Request{Version: "v2", RunDeploy: true})
	s, err := DecodeState(saved)
	if err != nil || len(s.Checks) == 0 {
		t.Fatalf("state %v, %d checks", err, len(s.Checks))
	}
	start := s.Report.Deploy.StartedAt
	for i := range s.Checks {
		if !s.Checks[i].Baseline.At.Equal(start) {
			t.Errorf("%s: baseline saved at %s, want the deploy's start %s", s.Checks[i].Name, s.Checks[i].Baseline.At, start)
		}
		s.Checks[i].Baseline.At = time.Time{}
	}
	w, err := e.restore(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range w.checks {
		if !c.base.at.Equal(start) {
			t.Errorf("%s: baseline at %s after the resume, want %s", c.cfg.Name, c.base.at, start)
		}
	}
}
