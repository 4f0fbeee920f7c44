package health_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/deploywatch/deploywatch/health"
)

// A service with a database and a Redis dependency mounts the three
// endpoints under /health.
func Example() {
	var db *sql.DB // opened by the service
	h := health.New(
		health.WithCheck("database", health.SQL(db), health.Timeout(time.Second), health.FailureThreshold(2)),
		health.WithCheck("redis", health.Redis("127.0.0.1:6379")),
		health.WithVersion("1.4.2"),
	)
	mux := http.NewServeMux()
	mux.Handle("/health/", h.Handler("/health"))
	_ = mux // http.ListenAndServe(":8000", mux)
}

// The ready endpoint answers 503 with the failing check's error.
func ExampleHealth_ReadyHandler() {
	h := health.New(
		health.WithCheck("database", health.CheckerFunc(func(ctx context.Context) error {
			return errors.New("connection refused")
		})),
		health.WithCheck("redis", health.CheckerFunc(func(ctx context.Context) error { return nil })),
	)
	rec := httptest.NewRecorder()
	h.ReadyHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/health/ready", nil))
	body, _ := io.ReadAll(rec.Body)
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	fmt.Print(string(body))
	// Output:
	// 503 application/json
	// {"status":"not_ready","checks":{"database":"error: connection refused","redis":"ok"}}
}

// A service that must warm up holds readiness until it says so, and
// drains on shutdown.
func ExampleHealth_Drain() {
	h := health.New(health.WithStartupGate())
	ready := func() string { r, _ := h.Ready(context.Background()); return r.Status }
	fmt.Println(ready())
	h.Started()
	fmt.Println(ready())
	h.Drain() // on SIGTERM, before closing the server
	fmt.Println(ready())
	// Output:
	// starting
	// ready
	// draining
}
