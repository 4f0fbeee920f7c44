package health_test

import (
	"context"
	"database/sql"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/deploywatch/deploywatch/health"
	"github.com/deploywatch/deploywatch/internal/testenv"
)

func check(t *testing.T, c health.Checker) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Check(ctx)
}

func TestSQLAgainstSQLite(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := check(t, health.SQL(db)); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := check(t, health.SQLQuery(db, "SELECT 1")); err != nil {
		t.Fatalf("query: %v", err)
	}
	if err := check(t, health.SQLQuery(db, "SELECT * FROM missing_table")); err == nil || !strings.Contains(err.Error(), "missing_table") {
		t.Fatalf("a failing query passed: %v", err)
	}
	db.Close()
	if err := check(t, health.SQL(db)); err == nil {
		t.Fatal("a closed pool passed")
	}
}

func TestSQLAgainstPostgres(t *testing.T) {
	pg := testenv.StartPostgres(t)
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := health.New(health.WithCheck("database", health.SQLQuery(db, "SELECT 1")), health.WithCacheTTL(0))
	waitReady(t, h, true, "postgres up")
	pg.Stop()
	waitReady(t, h, false, "postgres stopped")
	resp, _ := h.Ready(context.Background())
	if !strings.HasPrefix(resp.Checks["database"], "error: ") {
		t.Errorf("database check reads %q", resp.Checks["database"])
	}
}

func TestRedisAgainstRedisServer(t *testing.T) {
	r := testenv.StartRedis(t, "")
	if err := check(t, health.Redis(r.Addr)); err != nil {
		t.Fatalf("PING: %v", err)
	}
	secured := testenv.StartRedis(t, "s3cret")
	if err := check(t, health.Redis(secured.Addr)); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("without a password: %v, want NOAUTH", err)
	}
	if err := check(t, health.Redis(secured.Addr, health.RedisPassword("wrong"))); err == nil {
		t.Fatal("a wrong password passed")
	}
	if err := check(t, health.Redis(secured.Addr, health.RedisPassword("s3cret"))); err != nil {
		t.Fatalf("with the password: %v", err)
	}
}

// TestReadyFollowsADependencyStoppedAndRestarted is the seed's readiness
// handler doing its job: Redis goes away, the service turns not ready, and
// comes back ready when Redis does, while liveness never changes.
func TestReadyFollowsADependencyStoppedAndRestarted(t *testing.T) {
	r := testenv.StartRedis(t, "")
	h := health.New(health.WithCheck("redis", health.Redis(r.Addr), health.Timeout(time.Second)), health.WithCacheTTL(0))
	srv := httptest.NewServer(h.Handler("/health"))
	defer srv.Close()
	waitReady(t, h, true, "redis up")
	r.Stop()
	waitReady(t, h, false, "redis stopped")
	if code := status(t, srv.URL+"/health/live"); code != 200 {
		t.Errorf("liveness %d while a dependency is down", code)
	}
	if code := status(t, srv.URL+"/health/ready"); code != 503 {
		t.Errorf("readiness %d, want 503", code)
	}
	r.Start()
	waitReady(t, h, true, "redis restarted")
	if code := status(t, srv.URL+"/health/ready"); code != 200 {
		t.Errorf("readiness %d after the restart", code)
	}
}

func TestTCPAndHTTPCheckers(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) }))
	defer bad.Close()
	if err := check(t, health.HTTP(ok.URL, nil)); err != nil {
		t.Errorf("HTTP 200: %v", err)
	}
	if err := check(t, health.HTTP(bad.URL, nil)); err == nil || !strings.Contains(err.Error(), "502") {
		t.Errorf("HTTP 502: %v", err)
	}
	if err := check(t, health.TCP(strings.TrimPrefix(ok.URL, "http://"))); err != nil {
		t.Errorf("TCP: %v", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if err := check(t, health.TCP(addr)); err == nil {
		t.Error("TCP to a closed port passed")
	}
}

func TestRedisAgainstAServerThatIsNotRedis(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	if err := check(t, health.Redis(ln.Addr().String())); err == nil || !strings.Contains(err.Error(), "unexpected reply") {
		t.Fatalf("err = %v", err)
	}
}

func waitReady(t *testing.T, h *health.Health, want bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, ok := h.Ready(context.Background())
		if ok == want {
			return
		}
		if time.Now().After(deadline) {
			resp, _ := h.Ready(context.Background())
			t.Fatalf("%s: ready = %v after 15s, want %v (%+v)", what, ok, want, resp)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
