package embedded

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func value(t *testing.T, s *Source, expr string) (float64, bool) {
	t.Helper()
	v, err := s.Query(context.Background(), expr, time.Now())
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	if len(v) != 1 {
		return 0, false
	}
	return v[0].Value, true
}

func TestScrapesUpAndStaleness(t *testing.T) {
	var n, down atomic.Int64
	var accept atomic.Value
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accept.Store(r.Header.Get("Accept"))
		if down.Load() == 1 {
			http.Error(w, "gone", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE hits_total counter\nhits_total{route=\"/a\"} %d\n", n.Add(10))
	}))
	defer target.Close()
	src, err := New(Options{Scrape: []ScrapeConfig{{Job: "api", Targets: []string{strings.TrimPrefix(target.URL, "http://")}, Interval: 100 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Start()()

	waitUntil(t, "two scrapes", func() bool { v, ok := value(t, src, `hits_total{job="api",route="/a"}`); return ok && v >= 20 })
	if v, ok := value(t, src, `up{job="api"}`); !ok || v != 1 {
		t.Fatalf("up = %v %v", v, ok)
	}
	if v, ok := value(t, src, `rate(hits_total[1s]) > 0`); !ok || v <= 0 {
		t.Errorf("rate = %v %v", v, ok)
	}
	if a, _ := accept.Load().(string); !strings.Contains(a, "openmetrics") || !strings.Contains(a, "text/plain") {
		t.Errorf("Accept %q", a)
	}
	down.Store(1)
	waitUntil(t, "up to drop to 0", func() bool { v, ok := value(t, src, `up{job="api"}`); return ok && v == 0 })
	if _, ok := value(t, src, `hits_total`); ok {
		t.Error("the series of a failing target are still visible: no staleness marker")
	}
	if src.CollectingSince().IsZero() {
		t.Error("CollectingSince is zero while running")
	}
}

func TestSlowTargetTimesOut(t *testing.T) {
	release := make(chan struct{})
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer target.Close()
	defer close(release)
	src, _ := New(Options{Scrape: []ScrapeConfig{{Job: "slow", Targets: []string{strings.TrimPrefix(target.URL, "http://")}, Interval: 200 * time.Millisecond, Timeout: 50 * time.Millisecond}}})
	defer src.Start()()
	waitUntil(t, "up=0 for a target slower than its timeout", func() bool { v, ok := value(t, src, `up{job="slow"}`); return ok && v == 0 })
}

func TestOptionsAreChecked(t *testing.T) {
	for _, o := range []Options{{}, {Scrape: []ScrapeConfig{{Targets: []string{"x:1"}}}}, {Scrape: []ScrapeConfig{{Job: "a"}}}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
