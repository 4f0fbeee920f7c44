// Package server is deploywatch serve: a controller that watches every
// opted-in Kubernetes workload with the same engine as the CLI, keeps the
// history in a store, fails over between replicas through a Lease, and
// serves its health and metrics over HTTP.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/deploywatch/deploywatch/health"
	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/dashboard"
	"github.com/deploywatch/deploywatch/internal/store"
)

// ConfigError is serve.yaml asking for something that cannot be had (a
// token's variable not set): the user's to fix.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// stopTimeout bounds how long a stopping replica waits for its watches: a
// rollback under way is finished first, within its own timeout.
const stopTimeout = 5 * time.Minute

// Options are what a Server needs besides its config.
type Options struct {
	Config *config.Serve
	Store  store.Store
	// REST is the Kubernetes connection; nil without a kubernetes section.
	REST *rest.Config
	// Identity names this replica in the Lease and the store. Default:
	// the host name and a random suffix.
	Identity string
	// Env looks up secrets named by configs.
	Env    func(string) (string, bool)
	Logger *slog.Logger
	// Version is deploywatch's, for /health/info.
	Version string
	// Listener, when set, is used instead of listening on Config.Listen.
	Listener net.Listener
}

// Server is one serve replica.
type Server struct {
	cfg      *config.Serve
	store    store.Store
	rest     *rest.Config
	cs       kubernetes.Interface
	identity string
	env      func(string) (string, bool)
	log      *slog.Logger
	metrics  *metrics
	version  string
	ln       net.Listener

	access    *access
	hub       *hub
	dashboard *dashboard.Dashboard

	leading    atomic.Bool
	mu         sync.Mutex
	controller *controller
}

// New builds a replica.
func New(o Options) (*Server, error) {
	s := &Server{cfg: o.Config, store: o.Store, rest: o.REST, identity: o.Identity, env: o.Env, log: o.Logger,
		metrics: newMetrics(), version: o.Version, ln: o.Listener}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.env == nil {
		s.env = os.LookupEnv
	}
	acc, err := loadAccess(s.cfg.API, s.env, s.cfg.Resolve)
	if err != nil {
		return nil, &ConfigError{err}
	}
	s.access, s.hub = acc, newHub()
	s.dashboard, err = dashboard.New(dashboard.Options{History: s.store, DORA: s.doraReport,
		MayRead: s.access.mayRead, ReadToken: s.access.readToken, Logger: s.log})
	if err != nil {
		return nil, err
	}
	if s.identity == "" {
		host, _ := os.Hostname()
		s.identity = fmt.Sprintf("%s_%d", host, time.Now().UnixNano()%1e6)
	}
	if s.cfg.Kubernetes != nil {
		if s.rest == nil {
			return nil, errors.New("serve needs a Kubernetes connection for its kubernetes section")
		}
		rc := rest.CopyConfig(s.rest)
		rc.UserAgent = "deploywatch-serve"
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return nil, fmt.Errorf("kubernetes client: %w", err)
		}
		s.cs = cs
	}
	return s, nil
}

// Run serves until ctx ends: HTTP at once; the controller while this
// replica leads (always, without leader election); the retention pruning
// hourly. On the way out a rollback under way is finished, then the lease
// is released at once for the next replica.
func (s *Server) Run(ctx context.Context) error {
	if s.cfg.Kubernetes != nil {
		if err := s.checkPermissions(ctx); err != nil {
			return err
		}
	}
	ln := s.ln
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	srv := httpServer(s.Handler(), ReadHeaderTimeout)
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(ln) }()
	s.log.Info("serving", "addr", ln.Addr().String(), "identity", s.identity)

	var wg sync.WaitGroup
	wg.Go(func() { s.prune(ctx) })
	if s.cfg.Kubernetes != nil {
		wg.Go(func() {
			if s.cfg.LeaderElection.Enabled {
				s.elect(ctx)
			} else {
				s.lead(ctx)
			}
		})
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-httpDone:
	}
	wg.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// lead runs the controller until ctx ends.
func (s *Server) lead(ctx context.Context) {
	c := newController(s)
	s.mu.Lock()
	s.controller = c
	s.mu.Unlock()
	s.leading.Store(true)
	s.metrics.leader.Set(1)
	if err := c.run(ctx); err != nil {
		s.log.Error("the controller stopped", "err", err)
	}
	s.leading.Store(false)
	s.metrics.leader.Set(0)
	s.mu.Lock()
	s.controller = nil
	s.mu.Unlock()
}

// prune deletes the deploys older than the retention, hourly.
func (s *Server) prune(ctx context.Context) {
	for {
		before := time.Now().Add(-s.cfg.Store.Retention.D())
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		n, err := s.store.Prune(pctx, before)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("pruning old deploys", "err", err)
		case n > 0:
			s.log.Info("pruned old deploys", "deploys", n, "ended_before", before)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
	}
}

// Handler serves health, metrics, the API and the dashboard, with the
// security headers every answer carries.
func (s *Server) Handler() http.Handler {
	h := health.New(
		health.WithVersion(s.version),
		health.WithCacheTTL(time.Second),
		health.WithCheck("store", health.CheckerFunc(func(ctx context.Context) error { return s.store.Ping(ctx) })),
		health.WithCheck("informers", health.CheckerFunc(func(context.Context) error { return s.informersReady() })),
		health.WithInfo("identity", func() any { return s.identity }),
		health.WithInfo("leader", func() any { return s.leading.Load() }),
	)
	mux := http.NewServeMux()
	mux.Handle("/health/", h.Handler("/health"))
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	s.routes(mux)
	s.dashboard.Register(mux)
	return securityHeaders(mux)
}

// securityHeaders sets, on every answer, a Content-Security-Policy that
// allows only this origin's own scripts, styles and images (no inline
// script or style), no framing, no MIME sniffing and no referrer.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// informersReady is ready on a follower, and on the leader once its
// informers have synced.
func (s *Server) informersReady() error {
	if s.cfg.Kubernetes == nil || !s.leading.Load() {
		return nil
	}
	s.mu.Lock()
	c := s.controller
	s.mu.Unlock()
	if c == nil || !c.hasSynced() {
		return errors.New("the informers have not synced yet")
	}
	return nil
}

// Leading reports whether this replica is the one that watches.
func (s *Server) Leading() bool { return s.leading.Load() }

// ReadHeaderTimeout bounds how long a client may take to send its
// request's headers: a slowloris holds a connection no longer than this.
const ReadHeaderTimeout = 10 * time.Second

// httpServer is serve's HTTP server. No WriteTimeout: event streams stay
// open, and set their own deadline for each write. Slow clients are
// bounded on the way in: headers within headerTimeout and 64 KiB, the
// whole request within a minute.
func httpServer(h http.Handler, headerTimeout time.Duration) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: headerTimeout, ReadTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
}
