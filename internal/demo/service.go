// Package demo is what `deploywatch demo` runs: an example service built on
// the health and httpmetrics packages, with releases whose behaviour
// differs, its own traffic, and an in-process platform that deploys and
// rolls back those releases. The watch itself is the real engine.
package demo

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deploywatch/deploywatch/health"
	"github.com/deploywatch/deploywatch/httpmetrics"
	"github.com/deploywatch/deploywatch/internal/loadgen"
)

// Release is a version of the service and how it behaves.
type Release struct {
	Version string
	Commit  string
	// ErrorRatio is the share of orders answered 500.
	ErrorRatio float64
	// Latency multiplies the base order latency of 5-25 ms.
	Latency float64
}

// The releases of the demo's story.
var (
	Stable = Release{Version: "v1.0.0", Commit: "3f2a9c1", ErrorRatio: 0.0002, Latency: 1}
	Good   = Release{Version: "v1.1.0", Commit: "8be41d0", ErrorRatio: 0.0002, Latency: 1}
	Bad    = Release{Version: "v1.2.0", Commit: "c0ffee5", ErrorRatio: 0.12, Latency: 3}
)

// running is a release with its own health endpoints, as a new process
// would have.
type running struct {
	rel     Release
	health  *health.Health
	handler http.Handler
}

// Service is the demo service. It serves /health/live, /health/ready,
// /health/info, /metrics, GET /api/v1/status, POST /auth/health and
// GET /api/orders, and sends itself order traffic.
type Service struct {
	Addr    string
	current atomic.Pointer[running]
	run     *loadgen.Runner
}

// Start serves on addr ("127.0.0.1:0" for any port) running initial, and
// drives rps order requests per second at itself.
func Start(addr string, initial Release, rps float64) (*Service, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo service: %w", err)
	}
	s := &Service{Addr: ln.Addr().String()}
	s.Switch(initial)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := httpmetrics.New(reg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/health/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.current.Load().handler.ServeHTTP(w, r)
	}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		rel := s.current.Load().rel
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"ok","version":%q}`+"\n", rel.Version)
	})
	mux.HandleFunc("POST /auth/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /api/orders", s.orders)

	s.run = loadgen.Start(ln, m.Middleware(mux), "/api/orders", rps, nil)
	return s, nil
}

// Switch makes rel the running release.
func (s *Service) Switch(rel Release) {
	h := health.New(health.WithVersion(rel.Version), health.WithCommit(rel.Commit))
	s.current.Store(&running{rel: rel, health: h, handler: h.Handler("/health")})
}

// Running returns the running release.
func (s *Service) Running() Release { return s.current.Load().rel }

// Close stops the traffic and the server.
func (s *Service) Close() { s.run.Close() }

func (s *Service) orders(w http.ResponseWriter, r *http.Request) {
	rel := s.current.Load().rel
	time.Sleep(time.Duration((0.005 + 0.020*rand.Float64()) * rel.Latency * float64(time.Second)))
	if rand.Float64() < rel.ErrorRatio {
		http.Error(w, `{"error":"order store unavailable"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"orders":[],"served_by":%q}`+"\n", rel.Version)
}
