package watch

import (
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
)

// Spec is everything one watch needs to know: what is deployed, how long
// each phase lasts, the checks and their lines, the policies, and a bound
// on every wait. SpecFor builds it from a config file; nothing in the
// engine reads the file's other sections.
type Spec struct {
	Service     string
	Environment string
	Phases      Phases
	// OnFailure is what a failed deploy gets; OnInconclusive, one that
	// could not be judged.
	OnFailure      config.Policy
	OnInconclusive config.Policy
	// ErrorLimit is how many consecutive errors reading the platform
	// (rollout status, pod health) end the watch as inconclusive.
	ErrorLimit int
	// Metrics is nil when there is no metric source: the watch is then
	// judged on the rollout and the platform's health alone.
	Metrics *MetricsSpec
	// Checks are judged every interval of the monitor phase.
	Checks []config.Check
	// Skipped are default checks that cannot run here, for the report.
	Skipped []config.SkippedCheck
	Bounds  Bounds
}

// Phases times the timeline.
type Phases struct {
	// Rollout bounds the wait for the new version to be fully out.
	Rollout time.Duration
	// Warmup is the grace period after the rollout in which only hard
	// failures count.
	Warmup time.Duration
	// Verify bounds the post-deploy checklist's waiting.
	Verify time.Duration
	// Monitor is the bake window.
	Monitor time.Duration
	// Interval is how often the checks are measured, and how often the
	// platform is asked how the rollout goes.
	Interval time.Duration
}

// MetricsSpec is how the checks' queries are sized.
type MetricsSpec struct {
	// Selector is substituted for $selector in the queries.
	Selector string
	// ScrapeInterval is how often the source scrapes the service. Zero:
	// measured at Start from up{selector}, else FallbackScrape.
	ScrapeInterval time.Duration
	// Window is the sliding window of the checks ($window). Zero:
	// max(4 scrape intervals, 2 phase intervals).
	Window time.Duration
	// BaselineWindow is how far before the deploy the baseline looks;
	// BaselineOffset moves that window back (a day, a week).
	BaselineWindow time.Duration
	BaselineOffset time.Duration
	// Control selects instances the deploy does not change, measured
	// beside the new version when a check fails ("" for none).
	Control string
	// SyntheticRate is the synthetic traffic's requests a second, which the
	// checks will count beside the service's own.
	SyntheticRate float64
	// Language is what the queries are written in (config.LanguagePromQL,
	// LanguageDatadog, LanguageValues); Source names the source's config
	// section.
	Language, Source string
	// QueryBudget is how many queries a second the monitor may send to
	// look at the checks more often than every interval (0: never).
	QueryBudget float64
}

// DatadogRateLimitWait bounds how long a Datadog query waits for a rate
// limit to reset.
const DatadogRateLimitWait = 30 * time.Second

// FallbackScrape is the scrape interval assumed when it can be neither
// configured nor measured: Prometheus's default.
const FallbackScrape = 15 * time.Second

// Bounds limit how long the engine waits on others. None is hidden in the
// engine; SpecFor sets each from the config and the README lists them.
type Bounds struct {
	// Query bounds one round of metric queries (every check at once,
	// retries included). A round cut short counts as an error of each
	// check it cut, so a hanging source ends the watch inconclusive after
	// the error limit instead of stalling it.
	Query time.Duration
	// Platform bounds one look at the platform: rollout status or pod
	// health.
	Platform time.Duration
}

// The bounds SpecFor uses where the config has no say.
const (
	// EmbeddedQueryBound bounds a round of queries to the embedded engine,
	// which answers in milliseconds; only a pathological query comes near.
	EmbeddedQueryBound = 10 * time.Second
	// PlatformBound bounds one look at the platform: an API server that
	// takes longer to answer a GET is unreachable for that look.
	PlatformBound = 10 * time.Second
)

// SpecFor builds the Spec of a loaded config. The query bound is the
// Prometheus client's whole budget, each attempt's timeout times its
// attempts plus the backoff between them (200 ms doubling, jittered by up
// to half), so the engine never cuts short a retry the client would have
// made.
func SpecFor(cfg *config.Config) Spec {
	p := cfg.Phases
	s := Spec{
		Service: cfg.Service, Environment: cfg.Environment,
		Phases: Phases{
			Rollout: p.Rollout.D(), Warmup: p.Warmup.D(), Verify: p.Verify.D(),
			Monitor: p.Monitor.D(), Interval: p.Interval.D(),
		},
		OnFailure: cfg.OnFailure, OnInconclusive: cfg.OnInconclusive,
		ErrorLimit: cfg.Judge.ErrorLimit,
		Checks:     cfg.Checks, Skipped: cfg.Skipped,
		Bounds: Bounds{Query: EmbeddedQueryBound, Platform: PlatformBound},
	}
	if m := cfg.Metrics; m != nil {
		s.Metrics = &MetricsSpec{
			Selector: m.Selector, ScrapeInterval: m.ScrapeInterval.D(), Window: m.Window.D(),
			BaselineWindow: cfg.Baseline.Window.D(), BaselineOffset: cfg.Baseline.Offset.D(),
			Control: cfg.Baseline.Control, Language: m.Language(), Source: m.SourceField(),
		}
		if m.QueryBudget != nil {
			s.Metrics.QueryBudget = *m.QueryBudget
		}
		if t := cfg.Traffic; t != nil {
			s.Metrics.SyntheticRate = t.Rate
		}
		if pr := m.Prometheus; pr != nil {
			attempts := time.Duration(1 + pr.Retries)
			backoff := time.Duration(0)
			for i, d := 0, 200*time.Millisecond; i < pr.Retries; i, d = i+1, d*2 {
				backoff += d + d/2
			}
			s.Bounds.Query = pr.Timeout.D()*attempts + backoff
		}
		if dd := m.Datadog; dd != nil {
			// Each attempt, its backoff, and one wait for a rate limit to reset.
			s.Bounds.Query = dd.Timeout.D()*time.Duration(1+dd.Retries) + time.Duration(dd.Retries)*time.Second + DatadogRateLimitWait
		}
		if c := m.Command; c != nil {
			s.Bounds.Query = c.Timeout.D() + time.Second
		}
		if h := m.HTTP; h != nil {
			s.Bounds.Query = h.Timeout.D() + time.Second
		}
	}
	return s
}

// window is the checks' default sliding window for a scrape interval:
// four scrapes, so that rate() and increase() always have samples to work
// with, and at least two check intervals.
func (s *Spec) window(scrape time.Duration) time.Duration {
	if s.Metrics != nil && s.Metrics.Window > 0 {
		return s.Metrics.Window
	}
	return max(4*scrape, 2*s.Phases.Interval)
}
