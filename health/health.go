// Package health gives a service the three endpoints Kubernetes probes and
// deploywatch read:
//
//   - /health/live answers 200 while the process can answer at all. It
//     never touches a dependency: a database blip must not make Kubernetes
//     restart every pod.
//   - /health/ready answers 200 {"status":"ready","checks":{...}} when every
//     dependency check passes, else 503 {"status":"not_ready",...}. Checks
//     run concurrently, each with its own timeout, and their results are
//     cached: a probe never waits for a slow dependency (except the very
//     first one), and a thousand probes cost the dependency one check per
//     interval.
//   - /health/info answers the running version, commit, deploy time and
//     uptime, which deploywatch compares with the version it deployed.
//
// Readiness can also be held false while the service warms up
// (WithStartupGate, then Started) and turned false on shutdown (Drain) so
// that Kubernetes stops sending traffic before the process exits.
//
// The package uses the standard library only.
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Version and Commit may be set at build time:
//
//	go build -ldflags "-X github.com/deploywatch/deploywatch/health.Version=1.4.2 \
//	                   -X github.com/deploywatch/deploywatch/health.Commit=$(git rev-parse HEAD)"
//
// Empty values (the default) fall through to the APP_VERSION and
// GIT_COMMIT environment variables, then to the build information Go
// records, then to "unknown".
var (
	Version string
	Commit  string
)

// Checker checks one dependency. It must honour ctx's deadline.
type Checker interface {
	Check(ctx context.Context) error
}

// CheckerFunc adapts a function to a Checker.
type CheckerFunc func(ctx context.Context) error

// Check calls f.
func (f CheckerFunc) Check(ctx context.Context) error { return f(ctx) }

// Health serves the three endpoints. Build it with New; it is safe for
// concurrent use.
type Health struct {
	checks     []*check
	ttl        time.Duration
	started    time.Time
	version    string
	commit     string
	info       map[string]func() any
	gated      bool
	now        func() time.Time
	mu         sync.Mutex
	isStarted  bool
	isDraining bool
}

// Option configures a Health.
type Option func(*Health)

// CheckOption configures one check.
type CheckOption func(*check)

// WithCheck registers a dependency check under name (the key in the
// ready response).
func WithCheck(name string, c Checker, opts ...CheckOption) Option {
	return func(h *Health) {
		ch := &check{name: name, checker: c, timeout: 2 * time.Second, threshold: 1}
		for _, o := range opts {
			o(ch)
		}
		h.checks = append(h.checks, ch)
	}
}

// Timeout bounds one run of the check. Default 2s.
func Timeout(d time.Duration) CheckOption { return func(c *check) { c.timeout = d } }

// FailureThreshold is how many contiguous failures turn the service not
// ready; fewer are reported in the body but keep it ready. Default 1.
func FailureThreshold(n int) CheckOption {
	return func(c *check) { c.threshold = max(n, 1) }
}

// WithCacheTTL is how long a check's result is reused before the next
// probe refreshes it in the background. Default 1s. With zero, every probe
// starts a refresh (one at a time per check) and still answers at once
// from the last result.
func WithCacheTTL(d time.Duration) Option { return func(h *Health) { h.ttl = d } }

// WithVersion sets the version reported by /health/info, overriding
// Version, APP_VERSION and the build information.
func WithVersion(v string) Option { return func(h *Health) { h.version = v } }

// WithCommit sets the commit reported by /health/info, overriding Commit,
// GIT_COMMIT and the build information.
func WithCommit(c string) Option { return func(h *Health) { h.commit = c } }

// WithInfo adds a field to /health/info; f is called on every request.
func WithInfo(key string, f func() any) Option {
	return func(h *Health) { h.info[key] = f }
}

// WithStartTime sets the deploy time reported by /health/info. Default:
// DEPLOYED_AT (RFC 3339) if set, else when New was called.
func WithStartTime(t time.Time) Option { return func(h *Health) { h.started = t } }

// WithStartupGate holds readiness false ("starting") until Started is
// called, for services that must warm caches or load data first.
func WithStartupGate() Option { return func(h *Health) { h.gated = true } }

// New returns a Health with the options applied.
func New(opts ...Option) *Health {
	h := &Health{ttl: time.Second, info: map[string]func() any{}, now: time.Now}
	h.started = deployedAt(h.now())
	for _, o := range opts {
		o(h)
	}
	h.version, h.commit = resolveVersion(h.version, h.commit)
	return h
}

// Started ends the startup gate: readiness now follows the checks.
func (h *Health) Started() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.isStarted = true
}

// Drain turns readiness false for good, so that Kubernetes stops routing
// traffic here before the process exits. Call it when shutdown begins,
// then wait a probe period or two before closing the server.
func (h *Health) Drain() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.isDraining = true
}

// Handler serves /live, /ready and /info under prefix (e.g. "/health").
func (h *Health) Handler(prefix string) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/")
	mux := http.NewServeMux()
	mux.Handle("GET "+prefix+"/live", h.LiveHandler())
	mux.Handle("GET "+prefix+"/ready", h.ReadyHandler())
	mux.Handle("GET "+prefix+"/info", h.InfoHandler())
	return mux
}

// LiveHandler answers 200 {"status":"alive"}.
func (h *Health) LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
}

// ReadyResponse is the body of /health/ready.
type ReadyResponse struct {
	// Status is ready, not_ready, starting or draining.
	Status string `json:"status"`
	// Checks maps each check to "ok" or "error: <message>".
	Checks map[string]string `json:"checks"`
}

// ReadyHandler answers 200 when ready and 503 otherwise, with a
// ReadyResponse body.
func (h *Health) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, ok := h.Ready(r.Context())
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, resp)
	})
}

// Ready evaluates readiness from the cached check results, refreshing
// stale ones in the background.
func (h *Health) Ready(ctx context.Context) (ReadyResponse, bool) {
	resp := ReadyResponse{Status: "ready", Checks: make(map[string]string, len(h.checks))}
	h.mu.Lock()
	gate, draining := h.gated && !h.isStarted, h.isDraining
	h.mu.Unlock()

	// Cached results are read at once; only a check that has never
	// finished is waited for (they all run concurrently meanwhile).
	results := make([]result, len(h.checks))
	pending := make([]<-chan struct{}, len(h.checks))
	for i, c := range h.checks {
		results[i], pending[i] = c.snapshot(h.ttl, h.now)
	}
	for i, wait := range pending {
		if wait != nil {
			results[i] = h.checks[i].await(ctx, wait)
		}
	}
	ok := true
	for i, c := range h.checks {
		res := results[i]
		switch {
		case res.err == nil:
			resp.Checks[c.name] = "ok"
		default:
			resp.Checks[c.name] = "error: " + res.err.Error()
			if res.failures >= c.threshold {
				ok = false
			}
		}
	}
	switch {
	case draining:
		resp.Status, ok = "draining", false
	case gate:
		resp.Status, ok = "starting", false
	case !ok:
		resp.Status = "not_ready"
	}
	return resp, ok
}

// InfoHandler answers the version, commit, deploy time and uptime, plus
// the WithInfo fields.
func (h *Health) InfoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := map[string]any{}
		for k, f := range h.info {
			body[k] = f()
		}
		body["version"] = h.version
		body["commit"] = h.commit
		body["deployed_at"] = h.started.UTC().Format(time.RFC3339Nano)
		body["uptime_seconds"] = h.now().Sub(h.started).Seconds()
		writeJSON(w, http.StatusOK, body)
	})
}

// Info returns the version and commit /health/info reports.
func (h *Health) Info() (version, commit string) { return h.version, h.commit }

func writeJSON(w http.ResponseWriter, code int, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		code = http.StatusInternalServerError
		data = []byte(`{"status":"error"}`)
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	hd.Set("Pragma", "no-cache")
	hd.Set("Expires", "0")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(data, '\n'))
}

// resolveVersion picks the version and commit: explicit options, then the
// link-time variables, then the environment, then Go's build information.
// A variable left empty never shadows the ones after it.
func resolveVersion(version, commit string) (string, string) {
	var biVersion, biCommit string
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			biVersion = v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				biCommit = s.Value
			}
		}
	}
	version = first(version, Version, os.Getenv("APP_VERSION"), biVersion, "unknown")
	commit = first(commit, Commit, os.Getenv("GIT_COMMIT"), biCommit, "unknown")
	return version, commit
}

func deployedAt(now time.Time) time.Time {
	if v := os.Getenv("DEPLOYED_AT"); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t
		}
	}
	return now
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// check is one registered dependency with its cached result.
type check struct {
	name      string
	checker   Checker
	timeout   time.Duration
	threshold int

	mu       sync.Mutex
	last     result
	have     bool
	running  chan struct{} // closed when the running refresh ends
	failures int
}

type result struct {
	err      error
	at       time.Time
	failures int // contiguous failures including this one
}

// snapshot returns the cached result, starting a background refresh when
// it is older than ttl (stale-while-revalidate). A check that never
// finished returns a channel to wait on instead.
func (c *check) snapshot(ttl time.Duration, now func() time.Time) (result, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.have && now().Sub(c.last.at) < ttl {
		return c.last, nil
	}
	if c.running == nil {
		done := make(chan struct{})
		c.running = done
		go c.refresh(done, now)
	}
	if c.have {
		return c.last, nil
	}
	return result{}, c.running
}

// await waits for the first result of a check, or for ctx.
func (c *check) await(ctx context.Context, wait <-chan struct{}) result {
	select {
	case <-wait:
	case <-ctx.Done():
		return result{err: fmt.Errorf("no result yet: %w", ctx.Err()), failures: c.threshold}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

func (c *check) refresh(done chan struct{}, now func() time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	err := run(ctx, c.checker)
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s", c.timeout)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.failures++
	} else {
		c.failures = 0
	}
	c.last = result{err: err, at: now(), failures: c.failures}
	c.have = true
	c.running = nil
	close(done)
}

// run calls the checker, turning a panic into an error and a check that
// ignores its deadline into a timeout.
func run(ctx context.Context, c Checker) error {
	errc := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				errc <- fmt.Errorf("check panicked: %v", p)
			}
		}()
		errc <- c.Check(ctx)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return fmt.Errorf("timed out: %w", ctx.Err())
	}
}
