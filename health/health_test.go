package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path string) (int, map[string]any, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s: body %q is not JSON: %v", path, rec.Body.String(), err)
	}
	return rec.Code, body, rec.Header()
}

func TestLiveNeverTouchesDependencies(t *testing.T) {
	var calls atomic.Int32
	h := New(WithCheck("db", CheckerFunc(func(context.Context) error { calls.Add(1); return errors.New("down") })))
	code, body, hdr := get(t, h.Handler("/health"), "/health/live")
	if code != 200 || body["status"] != "alive" || calls.Load() != 0 {
		t.Fatalf("live: %d %v, %d checks ran", code, body, calls.Load())
	}
	if hdr.Get("Content-Type") != "application/json" || !strings.Contains(hdr.Get("Cache-Control"), "no-store") {
		t.Errorf("headers %v", hdr)
	}
}

func TestReady(t *testing.T) {
	cases := []struct {
		name   string
		checks []Option
		code   int
		status string
		bodies map[string]string
	}{
		{"no checks is ready", nil, 200, "ready", map[string]string{}},
		{"all ok", []Option{WithCheck("database", CheckerFunc(func(context.Context) error { return nil })),
			WithCheck("redis", CheckerFunc(func(context.Context) error { return nil }))}, 200, "ready",
			map[string]string{"database": "ok", "redis": "ok"}},
		{"one failing", []Option{WithCheck("database", CheckerFunc(func(context.Context) error { return errors.New("connection refused") })),
			WithCheck("redis", CheckerFunc(func(context.Context) error { return nil }))}, 503, "not_ready",
			map[string]string{"database": "error: connection refused", "redis": "ok"}},
		{"a panic is an error, not a crash", []Option{WithCheck("cache", CheckerFunc(func(context.Context) error { panic("nil map") }))},
			503, "not_ready", map[string]string{"cache": "error: check panicked: nil map"}},
		{"a check ignoring its deadline times out", []Option{WithCheck("slow", CheckerFunc(func(context.Context) error { time.Sleep(time.Second); return nil }), Timeout(50*time.Millisecond))},
			503, "not_ready", map[string]string{"slow": "error: timed out: context deadline exceeded"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := New(c.checks...)
			code, body, _ := get(t, h.ReadyHandler(), "/health/ready")
			if code != c.code || body["status"] != c.status {
				t.Fatalf("got %d %v, want %d %s", code, body, c.code, c.status)
			}
			checks, _ := body["checks"].(map[string]any)
			if len(checks) != len(c.bodies) {
				t.Fatalf("checks %v, want %v", checks, c.bodies)
			}
			for k, v := range c.bodies {
				if checks[k] != v {
					t.Errorf("check %s = %v, want %q", k, checks[k], v)
				}
			}
		})
	}
}

// TestProbesDoNotStampede: a hundred concurrent probes cost one check run,
// and a slow dependency delays only the very first probe.
func TestProbesDoNotStampede(t *testing.T) {
	var calls atomic.Int32
	slow := CheckerFunc(func(ctx context.Context) error {
		calls.Add(1)
		time.Sleep(200 * time.Millisecond)
		return nil
	})
	h := New(WithCheck("db", slow), WithCacheTTL(time.Hour))
	done := make(chan int, 100)
	for range 100 {
		go func() {
			rec := httptest.NewRecorder()
			h.ReadyHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			done <- rec.Code
		}()
	}
	for range 100 {
		if code := <-done; code != 200 {
			t.Fatalf("probe answered %d", code)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("the check ran %d times for 100 probes", calls.Load())
	}
	// Stale results are served at once while one refresh runs.
	h = New(WithCheck("db", slow), WithCacheTTL(time.Millisecond))
	get(t, h.ReadyHandler(), "/")
	time.Sleep(5 * time.Millisecond)
	start := time.Now()
	for range 20 {
		get(t, h.ReadyHandler(), "/")
	}
	if el := time.Since(start); el > time.Second { // waiting for the dependency would take 4s
		t.Errorf("20 probes on a stale cache took %s: they waited for the dependency", el)
	}
}

func TestFailureThreshold(t *testing.T) {
	var fail atomic.Bool
	var runs atomic.Int32
	c := CheckerFunc(func(context.Context) error {
		defer runs.Add(1)
		if fail.Load() {
			return errors.New("blip")
		}
		return nil
	})
	h := New(WithCheck("db", c, FailureThreshold(3)), WithCacheTTL(0))
	idle := func() bool {
		ch := h.checks[0]
		ch.mu.Lock()
		defer ch.mu.Unlock()
		return ch.running == nil
	}
	waitIdle := func(cond func() bool) {
		deadline := time.Now().Add(5 * time.Second)
		for !cond() || !idle() {
			if time.Now().After(deadline) {
				t.Fatal("the background refresh did not finish")
			}
			time.Sleep(time.Millisecond)
		}
	}
	ready := func() (int, string) {
		// With a zero TTL a probe starts a background refresh unless one
		// runs: wait until none runs, probe, and wait for that refresh, so
		// that the next probe reads exactly one more run.
		waitIdle(func() bool { return true })
		before := runs.Load()
		get(t, h.ReadyHandler(), "/")
		waitIdle(func() bool { return runs.Load() > before })
		code, body, _ := get(t, h.ReadyHandler(), "/")
		return code, body["checks"].(map[string]any)["db"].(string)
	}
	if code, _ := ready(); code != 200 {
		t.Fatal("not ready at start")
	}
	fail.Store(true)
	var codes []int
	for range 4 {
		code, msg := ready()
		codes = append(codes, code)
		if msg != "error: blip" {
			t.Errorf("a failing check reads %q", msg)
		}
	}
	if codes[0] != 200 || codes[len(codes)-1] != 503 {
		t.Fatalf("codes %v: want ready through the first failures, not ready after 3", codes)
	}
}

func TestStartupGateAndDrain(t *testing.T) {
	h := New(WithStartupGate())
	if code, body, _ := get(t, h.ReadyHandler(), "/"); code != 503 || body["status"] != "starting" {
		t.Fatalf("before Started: %d %v", code, body)
	}
	h.Started()
	if code, _, _ := get(t, h.ReadyHandler(), "/"); code != 200 {
		t.Fatalf("after Started: %d", code)
	}
	h.Drain()
	if code, body, _ := get(t, h.ReadyHandler(), "/"); code != 503 || body["status"] != "draining" {
		t.Fatalf("draining: %d %v", code, body)
	}
	if code, _, _ := get(t, h.LiveHandler(), "/"); code != 200 {
		t.Fatal("draining must not fail liveness")
	}
}

func TestInfoVersionPrecedence(t *testing.T) {
	cases := []struct {
		name             string
		linkVersion, env string
		opt              string
		want             string
	}{
		{"environment when nothing is linked", "", "2.0.0", "", "2.0.0"},
		{"link-time value beats the environment", "1.4.2", "2.0.0", "", "1.4.2"},
		{"an option beats both", "1.4.2", "2.0.0", "3.0.0", "3.0.0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old := Version
			Version = c.linkVersion
			defer func() { Version = old }()
			t.Setenv("APP_VERSION", c.env)
			t.Setenv("GIT_COMMIT", "abc123")
			var opts []Option
			if c.opt != "" {
				opts = append(opts, WithVersion(c.opt))
			}
			h := New(opts...)
			_, body, _ := get(t, h.InfoHandler(), "/")
			if body["version"] != c.want || body["commit"] != "abc123" {
				t.Fatalf("info %v, want version %s", body, c.want)
			}
		})
	}
}

func TestInfoFields(t *testing.T) {
	t.Setenv("DEPLOYED_AT", "2026-11-25T10:00:00Z")
	h := New(WithInfo("region", func() any { return "eu-1" }))
	h.now = func() time.Time { return time.Date(2026, 11, 25, 10, 1, 30, 0, time.UTC) }
	_, body, _ := get(t, h.InfoHandler(), "/")
	if body["deployed_at"] != "2026-11-25T10:00:00Z" || body["uptime_seconds"] != 90.0 || body["region"] != "eu-1" {
		t.Fatalf("info %v", body)
	}
}

func TestHandlerRoutes(t *testing.T) {
	h := New().Handler("/health/")
	for _, p := range []string{"/health/live", "/health/ready", "/health/info"} {
		if code, _, _ := get(t, h, p); code != 200 {
			t.Errorf("%s answered %d", p, code)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/health/ready", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST answered %d", rec.Code)
	}
}
