// Command service is a small HTTP service built on deploywatch's health and
// httpmetrics packages: the endpoints Kubernetes probes and deploywatch
// judge, and the ones the seed's smoke tests call.
//
//	go run ./examples/service -addr 127.0.0.1:8000 [-redis 127.0.0.1:6379] [-database postgres://...]
//
// It serves /health/live, /health/ready, /health/info, /metrics,
// GET /api/v1/status ({"status":"ok"}) and POST /auth/health.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deploywatch/deploywatch/health"
	"github.com/deploywatch/deploywatch/httpmetrics"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "service:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:8000", "listen address")
	redisAddr := flag.String("redis", "", "Redis address to check for readiness (host:port)")
	dbURL := flag.String("database", "", "PostgreSQL URL to check for readiness")
	drain := flag.Duration("drain", 5*time.Second, "how long to stay up, not ready, after SIGTERM")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	opts := []health.Option{health.WithStartupGate()}
	if *redisAddr != "" {
		opts = append(opts, health.WithCheck("redis", health.Redis(*redisAddr, health.RedisPassword(os.Getenv("REDIS_PASSWORD")))))
	}
	if *dbURL != "" {
		db, err := sql.Open("pgx", *dbURL)
		if err != nil {
			return fmt.Errorf("database: %w", err)
		}
		defer db.Close()
		opts = append(opts, health.WithCheck("database", health.SQLQuery(db, "SELECT 1"), health.FailureThreshold(2)))
	}
	h := health.New(opts...)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := httpmetrics.New(reg)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/health/", h.Handler("/health"))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		version, commit := h.Info()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"ok","version":%q,"commit":%q}`+"\n", version, commit)
	})
	mux.HandleFunc("POST /auth/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})

	srv := &http.Server{Addr: *addr, Handler: metrics.Middleware(mux), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	// Warm-up would happen here (caches, connections); then readiness opens.
	h.Started()
	log.Info("serving", "addr", *addr)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	select {
	case err := <-errc:
		return err
	case <-stop:
	}
	// Not ready first, so Kubernetes stops routing here; then close.
	h.Drain()
	log.Info("draining", "for", *drain)
	time.Sleep(*drain)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
