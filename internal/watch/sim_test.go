package watch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/deploywatch/deploywatch/internal/metrics"
)

// The engine's test doubles: a clock that moves only when the engine
// waits, a simulated service that answers the default checks' PromQL, and
// platforms that record what was done to them. Each can "kill" the engine
// at a chosen point (see killer), as SIGKILL would kill deploywatch.

// killer ends the engine's goroutine at its at-th kill point, as if the
// process died there: runtime.Goexit unwinds the goroutine without
// returning to the engine. Kill points are the moments a process can die
// between two of the engine's effects: after each checkpoint, after each
// platform effect, and during each wait.
type killer struct {
	mu     sync.Mutex
	at, n  int
	killed bool
}

func (k *killer) point() {
	if k == nil {
		return
	}
	k.mu.Lock()
	k.n++
	die := k.n == k.at
	if die {
		k.killed = true
	}
	k.mu.Unlock()
	if die {
		runtime.Goexit()
	}
}

// fakeClock advances by itself: every wait returns at once with the time
// moved forward, so a five-minute watch runs in milliseconds and the
// engine's timing is exactly reproducible.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	kill *killer
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.kill.point()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// profile is how the simulated service behaves.
type profile struct {
	rps      float64
	errRatio float64
	latency  float64 // multiplier of the 10-50 ms base latency
	silent   bool    // no traffic reaches it
	// coldErrRatio is the error share for the first coldFor after the
	// deploy: a warm-up stumble.
	coldErrRatio float64
	coldFor      time.Duration
}

type request struct {
	t       time.Time
	err     bool
	latency float64
}

// sim is a service and a metric source at once: it generates requests
// from seeded randomness and answers the default checks' PromQL about
// them, as Prometheus would (an error series exists only once an error
// happened; an empty vector when nothing matches).
type sim struct {
	t0       time.Time
	requests []request
	// failAfter makes every query fail from this time on (source down).
	failAfter time.Time
	// control answers the queries of the control group (job="control").
	control *sim
	// cumErr[i] counts the errors among requests[:i]; cumFast[b][i] the
	// requests among requests[:i] no slower than buckets[b]: a window's
	// counts are differences, so long watches stay fast to simulate.
	cumErr  []int
	cumFast [][]int
}

// index builds the cumulative counts.
func (s *sim) index() *sim {
	s.cumErr = make([]int, len(s.requests)+1)
	s.cumFast = make([][]int, len(buckets))
	for b := range buckets {
		s.cumFast[b] = make([]int, len(s.requests)+1)
	}
	for i, r := range s.requests {
		s.cumErr[i+1] = s.cumErr[i]
		if r.err {
			s.cumErr[i+1]++
		}
		for b, ub := range buckets {
			s.cumFast[b][i+1] = s.cumFast[b][i]
			if r.latency <= ub {
				s.cumFast[b][i+1]++
			}
		}
	}
	return s
}

func newSim(seed uint64, t0 time.Time, before, after profile, deployAt time.Time, horizon time.Duration) *sim {
	return generateSim(seed, t0, deployAt, horizon, func(t time.Time) profile {
		p := before
		if !t.Before(deployAt) {
			p = after
		}
		if since := t.Sub(deployAt); since >= 0 && since < p.coldFor {
			p.errRatio = p.coldErrRatio
		}
		return p
	})
}

// generateSim draws the requests of a service whose behaviour at each
// moment is at(t): Poisson arrivals at its rate, each failing with its
// error share, with latencies of 10-50 ms times its multiplier.
func generateSim(seed uint64, t0, deployAt time.Time, horizon time.Duration, at func(time.Time) profile) *sim {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := &sim{t0: t0}
	t := t0
	end := t0.Add(horizon)
	for t.Before(end) {
		p := at(t)
		if p.silent || p.rps == 0 {
			t = t.Add(100 * time.Millisecond)
			continue
		}
		t = t.Add(time.Duration(r.ExpFloat64() / p.rps * float64(time.Second)))
		s.requests = append(s.requests, request{
			t: t, err: r.Float64() < p.errRatio,
			latency: (0.010 + 0.040*r.Float64()) * p.latency,
		})
	}
	return s.index()
}

var (
	reErrors  = regexp.MustCompile(`^sum\(increase\(http_requests_total\{job="(api|control)",status=~"5\.\."\}\[(\d+)s\]\)\)$`)
	reTotal   = regexp.MustCompile(`^sum\(increase\(http_requests_total\{job="(api|control)"\}\[(\d+)s\]\)\)$`)
	reBuckets = regexp.MustCompile(`^sum by \(le\) \(increase\(http_request_duration_seconds_bucket\{job="(api|control)"\}\[(\d+)s\]\)\)$`)
	buckets   = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, math.Inf(1)}
)

// span is the index range of the requests in the secs before at.
func (s *sim) span(at time.Time, secs string) (lo, hi int) {
	n, _ := strconv.Atoi(secs)
	from := at.Add(-time.Duration(n) * time.Second)
	lo = sort.Search(len(s.requests), func(i int) bool { return s.requests[i].t.After(from) })
	hi = sort.Search(len(s.requests), func(i int) bool { return s.requests[i].t.After(at) })
	return lo, hi
}

func (s *sim) Query(_ context.Context, expr string, at time.Time) (metrics.Vector, error) {
	if !s.failAfter.IsZero() && !at.Before(s.failAfter) {
		return nil, errors.New("querying http://127.0.0.1:9090: connection refused")
	}
	one := func(v float64) metrics.Vector { return metrics.Vector{{Labels: metrics.Labels{}, Value: v, Time: at}} }
	switch {
	case expr == `up{job="api"}`:
		return metrics.Vector{{Labels: metrics.Labels{"job": "api"}, Value: 1, Time: at}}, nil
	case expr == `count(http_requests_total{job="api"})`:
		return one(2), nil
	case reErrors.MatchString(expr):
		m := reErrors.FindStringSubmatch(expr)
		if m[1] == "control" {
			if s.control == nil {
				return metrics.Vector{}, nil
			}
			s = s.control
		}
		lo, hi := s.span(at, m[2])
		if s.cumErr[hi] == 0 { // the error series appears with the first error
			return metrics.Vector{}, nil
		}
		return one(float64(s.cumErr[hi] - s.cumErr[lo])), nil
	case reTotal.MatchString(expr):
		m := reTotal.FindStringSubmatch(expr)
		if m[1] == "control" {
			if s.control == nil {
				return metrics.Vector{}, nil
			}
			s = s.control
		}
		lo, hi := s.span(at, m[2])
		return one(float64(hi - lo)), nil
	case reBuckets.MatchString(expr):
		m := reBuckets.FindStringSubmatch(expr)
		if m[1] == "control" {
			if s.control == nil {
				return metrics.Vector{}, nil
			}
			s = s.control
		}
		lo, hi := s.span(at, m[2])
		var out metrics.Vector
		for i, b := range buckets {
			n := s.cumFast[i][hi] - s.cumFast[i][lo]
			out = append(out, metrics.Sample{Labels: metrics.Labels{"le": strconv.FormatFloat(b, 'g', -1, 64)}, Value: float64(n), Time: at})
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: the simulator does not know %q", metrics.ErrBadQuery, expr)
}

func (s *sim) QueryRange(_ context.Context, expr string, start, end time.Time, step time.Duration) (metrics.Matrix, error) {
	if !s.failAfter.IsZero() && !end.Before(s.failAfter) {
		return nil, errors.New("connection refused")
	}
	series := metrics.Series{Labels: metrics.Labels{"job": "api"}}
	for t := start; !t.After(end); t = t.Add(step) {
		if t.Before(s.t0) {
			continue
		}
		switch expr {
		case `timestamp(up{job="api"})`: // scraped every second
			series.Points = append(series.Points, metrics.Point{Time: t, Value: float64(t.Unix())})
		case `count(up{job="api"})`:
			series.Points = append(series.Points, metrics.Point{Time: t, Value: 1})
		default:
			return nil, fmt.Errorf("the simulator does not know range %q", expr)
		}
	}
	return metrics.Matrix{series}, nil
}

// fakePlatform is a command target without commands. It keeps what runs
// ("v1" before the deploy), so that a resumed rollback can be finished.
type fakePlatform struct {
	mu         sync.Mutex
	running    string
	deployErr  error
	done       func(n int) bool // rollout done at the n-th look
	looks      int
	deploys    int
	rollbacks  []Deploy
	pauses     int
	rollbackFn func(ctx context.Context) error
	kill       *killer
}

var (
	_ Platform         = (*fakePlatform)(nil)
	_ RollbackFinisher = (*fakePlatform)(nil)
	_ VersionReader    = (*fakePlatform)(nil)
)

func (p *fakePlatform) Running(context.Context, Deploy) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running, nil
}

func (p *fakePlatform) Current(_ context.Context, d Deploy, begun bool) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if begun && p.running == d.Version {
		return "v1", nil // the version before the one someone else deployed
	}
	return p.running, nil
}

func (p *fakePlatform) Deploy(_ context.Context, d Deploy) error {
	p.mu.Lock()
	p.deploys++
	if p.deployErr == nil {
		p.running = d.Version
	}
	p.mu.Unlock()
	p.kill.point()
	return p.deployErr
}

func (p *fakePlatform) Progress(context.Context, Deploy) (Progress, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.looks++
	if p.done == nil || p.done(p.looks) {
		return Progress{Done: true, Message: "all replicas updated"}, nil
	}
	return Progress{Message: fmt.Sprintf("%d of 3 replicas updated", p.looks%3)}, nil
}

func (p *fakePlatform) Rollback(ctx context.Context, d Deploy) (RollbackOutcome, error) {
	p.mu.Lock()
	p.rollbacks = append(p.rollbacks, d)
	p.running = d.PreviousVersion
	p.mu.Unlock()
	p.kill.point()
	if p.rollbackFn != nil {
		return RollbackOutcome{}, p.rollbackFn(ctx)
	}
	return RollbackOutcome{}, nil
}

func (p *fakePlatform) FinishRollback(ctx context.Context, d Deploy) (RollbackOutcome, error) {
	p.mu.Lock()
	running := p.running
	p.mu.Unlock()
	if running == d.PreviousVersion {
		return RollbackOutcome{Note: running + " already runs"}, nil
	}
	return p.Rollback(ctx, d)
}

func (p *fakePlatform) Pause(context.Context, Deploy) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pauses++
	return nil
}

func (p *fakePlatform) counts() (deploys, rollbacks int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deploys, len(p.rollbacks)
}

// healthyPlatform adds a health report to fakePlatform, as Kubernetes
// gives one.
type healthyPlatform struct {
	*fakePlatform
	health  func(n int) (Health, error)
	looks   int
	decline bool
}

func (p *healthyPlatform) Health(context.Context, Deploy) (Health, error) {
	p.looks++
	return p.health(p.looks)
}

func (p *healthyPlatform) Rollback(ctx context.Context, d Deploy) (RollbackOutcome, error) {
	_, _ = p.fakePlatform.Rollback(ctx, d)
	if p.decline {
		return RollbackOutcome{Declined: true, Note: "managed by Argo CD"}, nil
	}
	return RollbackOutcome{Note: "patched back"}, nil
}
