// Package embedded is deploywatch's own metric source for machines with no
// Prometheus: it scrapes the targets itself and answers any PromQL with
// Prometheus's engine over an in-memory store (internal/promql), so the
// same checks and queries work unchanged against it and a real server.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/deploywatch/deploywatch/internal/metrics"
	"github.com/deploywatch/deploywatch/internal/promql"
)

// maxScrapeBody bounds one scrape: a target exposing more than 64 MiB is
// misconfigured, and must not exhaust deploywatch's memory.
const maxScrapeBody = 64 << 20

// ScrapeConfig is one job: targets scraped alike.
type ScrapeConfig struct {
	Job     string
	Targets []string // host:port
	// Interval between scrapes. Default 15s.
	Interval time.Duration
	// Timeout of one scrape. Default: the interval.
	Timeout time.Duration
	// Path of the metrics endpoint. Default /metrics.
	Path string
	// Scheme is http or https. Default http.
	Scheme string
}

// Options configure a Source.
type Options struct {
	Scrape []ScrapeConfig
	// Retention bounds the samples kept. Default 1h.
	Retention time.Duration
	Engine    promql.EngineOptions
	Logger    *slog.Logger
	// Client makes the scrape requests. Default: a plain client.
	Client *http.Client
}

// Source scrapes targets and answers PromQL about them. Start it with Run.
type Source struct {
	opts    Options
	store   *promql.Store
	engine  *promql.Engine
	started time.Time
	mu      sync.Mutex
	running bool
}

// New checks the options and returns a Source; Run starts scraping.
func New(o Options) (*Source, error) {
	if len(o.Scrape) == 0 {
		return nil, errors.New("nothing to scrape")
	}
	for i := range o.Scrape {
		sc := &o.Scrape[i]
		if sc.Job == "" {
			return nil, fmt.Errorf("scrape %d: job is required", i)
		}
		if len(sc.Targets) == 0 {
			return nil, fmt.Errorf("scrape job %s: no targets", sc.Job)
		}
		if sc.Interval <= 0 {
			sc.Interval = 15 * time.Second
		}
		if sc.Timeout <= 0 || sc.Timeout > sc.Interval {
			sc.Timeout = sc.Interval
		}
		if sc.Path == "" {
			sc.Path = "/metrics"
		}
		if sc.Scheme == "" {
			sc.Scheme = "http"
		}
	}
	if o.Retention <= 0 {
		o.Retention = time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	store := promql.NewStore(o.Retention.Milliseconds())
	return &Source{opts: o, store: store, engine: promql.NewEngine(store, o.Engine)}, nil
}

// Run scrapes every target on its interval until ctx ends.
func (s *Source) Run(ctx context.Context) {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return
	}
	s.running = true
	s.started = time.Now()
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, sc := range s.opts.Scrape {
		for _, t := range sc.Targets {
			wg.Go(func() { s.loop(ctx, sc, t) })
		}
	}
	wg.Go(func() { s.compact(ctx) })
	wg.Wait()
}

// Start runs the scraper in the background, for a command's lifetime:
// stop ends it and waits until the scrapes in flight are done.
func (s *Source) Start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// CollectingSince is when scraping began (now, if Run has not started
// yet): the embedded engine has no history before it.
func (s *Source) CollectingSince() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started.IsZero() {
		return time.Now()
	}
	return s.started
}

// Query evaluates expr at time at.
func (s *Source) Query(ctx context.Context, expr string, at time.Time) (metrics.Vector, error) {
	return s.engine.Query(ctx, expr, at)
}

// QueryRange evaluates expr from start to end every step.
func (s *Source) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (metrics.Matrix, error) {
	return s.engine.QueryRange(ctx, expr, start, end, step)
}

func (s *Source) compact(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.store.Compact(now.UnixMilli())
		}
	}
}

// loop scrapes one target on its interval, starting at a random offset
// within the first quarter interval so targets do not all fire at once.
func (s *Source) loop(ctx context.Context, sc ScrapeConfig, target string) {
	tg := promql.Target{Job: sc.Job, Instance: target}
	u := url.URL{Scheme: sc.Scheme, Host: target, Path: sc.Path}
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(rand.Int64N(int64(sc.Interval/4) + 1))):
	}
	tick := time.NewTicker(sc.Interval)
	defer tick.Stop()
	for {
		s.scrape(ctx, sc, tg, u.String())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Source) scrape(ctx context.Context, sc ScrapeConfig, tg promql.Target, u string) {
	start := time.Now()
	body, contentType, err := s.fetch(ctx, sc, u)
	took := time.Since(start)
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		_, err = s.store.Ingest(tg, body, contentType, start, took)
		if err != nil && !errors.Is(err, promql.ErrOutOfOrder) {
			s.store.IngestFailure(tg, start, took)
		}
	} else {
		s.store.IngestFailure(tg, start, took)
	}
	if err != nil {
		s.opts.Logger.Debug("scrape failed", "job", tg.Job, "target", tg.Instance, "err", err)
	}
}

func (s *Source) fetch(ctx context.Context, sc ScrapeConfig, u string) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, sc.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", promql.ScrapeAccept)
	req.Header.Set("User-Agent", "deploywatch")
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", fmt.Sprintf("%g", sc.Timeout.Seconds()))
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("HTTP %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxScrapeBody+1))
	if err != nil {
		return nil, "", err
	}
	if len(body) > maxScrapeBody {
		return nil, "", fmt.Errorf("body exceeds %d bytes", maxScrapeBody)
	}
	ct := resp.Header.Get("Content-Type")
	if !strings.Contains(ct, "openmetrics") && !strings.HasPrefix(ct, "text/plain") {
		ct = "text/plain"
	}
	return body, ct, nil
}
