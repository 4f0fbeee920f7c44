// Package testsvc is a small HTTP service whose behaviour a deploy changes:
// its error ratio, its latency and whether traffic reaches it. It serves
// Prometheus metrics under the names deploywatch's default checks expect,
// drives its own traffic, and exposes /admin/deploy and /admin/rollback
// for the command target's hooks. Integration tests and benchmarks run it
// against a real Prometheus.
package testsvc

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deploywatch/deploywatch/internal/loadgen"
)

// Profile is how a version behaves.
type Profile struct {
	Version string `json:"version"`
	// ErrorRatio is the share of requests answered 500.
	ErrorRatio float64 `json:"error_ratio"`
	// Latency multiplies the base latency of 10-50 ms.
	Latency float64 `json:"latency"`
	// Silent stops the traffic that reaches the service (broken routing).
	Silent bool `json:"silent"`
}

// Service is a running test service.
type Service struct {
	Addr string

	mu       sync.Mutex
	current  Profile
	previous []Profile
	staged   *Profile
	deploys  int
	rollback int

	run  *loadgen.Runner
	reqs *prometheus.CounterVec
	dur  *prometheus.HistogramVec
}

// Start serves on addr ("127.0.0.1:0" for any port) with the given
// profile and drives rps requests per second at itself.
func Start(addr string, initial Profile, rps float64) (*Service, error) {
	if initial.Latency == 0 {
		initial.Latency = 1
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening: %w", err)
	}
	reg := prometheus.NewRegistry()
	s := &Service{
		Addr: ln.Addr().String(), current: initial,
		reqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "Requests served, by status.",
		}, []string{"method", "route", "status"}),
		dur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "Request latency.", Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	reg.MustRegister(s.reqs, s.dur, prometheus.NewGoCollector())
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api", s.api)
	mux.HandleFunc("POST /admin/stage", s.stage)
	mux.HandleFunc("POST /admin/deploy", s.deploy)
	mux.HandleFunc("POST /admin/rollback", s.rollbackHandler)
	mux.HandleFunc("GET /admin/state", s.state)
	s.run = loadgen.Start(ln, mux, "/api", rps, func() bool { return s.profile().Silent })
	return s, nil
}

// Close stops the traffic and the server.
func (s *Service) Close() { s.run.Close() }

// Stage sets the profile the next deploy switches to.
func (s *Service) Stage(p Profile) {
	if p.Latency == 0 {
		p.Latency = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.staged = &p
}

// Current returns the running profile and how many deploys and rollbacks
// it has seen.
func (s *Service) Current() (p Profile, deploys, rollbacks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current, s.deploys, s.rollback
}

func (s *Service) profile() Profile {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

func (s *Service) api(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	p := s.profile()
	time.Sleep(time.Duration((0.010 + 0.040*rand.Float64()) * p.Latency * float64(time.Second)))
	status := http.StatusOK
	if rand.Float64() < p.ErrorRatio {
		status = http.StatusInternalServerError
	}
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"version":%q}`, p.Version)
	s.reqs.WithLabelValues(r.Method, "/api", strconv.Itoa(status)).Inc()
	s.dur.WithLabelValues(r.Method, "/api").Observe(time.Since(start).Seconds())
}

func (s *Service) stage(w http.ResponseWriter, r *http.Request) {
	var p Profile
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.Stage(p)
}

func (s *Service) deploy(w http.ResponseWriter, _ *http.Request) {
	v, err := s.Deploy()
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	_, _ = fmt.Fprintf(w, "deployed %s\n", v)
}

// Deploy switches to the staged profile and returns its version.
func (s *Service) Deploy() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.staged == nil {
		return "", errors.New("nothing staged")
	}
	s.previous = append(s.previous, s.current)
	s.current, s.staged = *s.staged, nil
	s.deploys++
	return s.current.Version, nil
}

func (s *Service) rollbackHandler(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.previous) == 0 {
		http.Error(w, "nothing to roll back to", http.StatusConflict)
		return
	}
	s.current = s.previous[len(s.previous)-1]
	s.previous = s.previous[:len(s.previous)-1]
	s.rollback++
	_, _ = fmt.Fprintf(w, "rolled back to %s\n", s.current.Version)
}

func (s *Service) state(w http.ResponseWriter, _ *http.Request) {
	p, _, _ := s.Current()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(p)
}
