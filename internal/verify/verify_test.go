package verify

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/health"
	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// service is built on the health package: a database check that can be
// broken, a commit, and the seed's smoke endpoints.
func service(t *testing.T, commit string, dbDown *atomic.Bool) *httptest.Server {
	t.Helper()
	h := health.New(
		health.WithCommit(commit), health.WithVersion("1.4.2"), health.WithCacheTTL(0),
		health.WithCheck("database", health.CheckerFunc(func(context.Context) error {
			if dbDown.Load() {
				return errors.New("connection refused")
			}
			return nil
		})),
	)
	mux := http.NewServeMux()
	mux.Handle("/health/", h.Handler("/health"))
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	mux.HandleFunc("POST /auth/health", func(w http.ResponseWriter, r *http.Request) {})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func checklist(t *testing.T, base, extra string) *Checklist {
	t.Helper()
	dir := t.TempDir()
	smoke, _ := os.ReadFile("../../examples/smoke.yaml")
	if err := os.WriteFile(filepath.Join(dir, "smoke.yaml"), smoke, 0o600); err != nil {
		t.Fatal(err)
	}
	src := `service: api
target:
  command:
    rollback: "true"
metrics:
  prometheus: {url: "http://127.0.0.1:9090"}
  selector: 'job="api"'
verify:
  base_url: ` + base + `
  ready_url: /health/ready
  info_url: /health/info
  smoke: smoke.yaml
  settle: 1s
` + extra
	cfg, err := config.Load([]byte(src), filepath.Join(dir, "deploywatch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, Sources{}, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	c.poll = 50 * time.Millisecond
	return c
}

func outcomes(items iter.Seq[watch.VerifyItem]) map[string]watch.VerifyItem {
	m := map[string]watch.VerifyItem{}
	for it := range items {
		m[it.Name] = it
	}
	return m
}

func TestChecklistAgainstAHealthService(t *testing.T) {
	var down atomic.Bool
	srv := service(t, "abc123", &down)
	d := watch.Deploy{Version: "abc123", StartedAt: time.Now()}

	items := outcomes(checklist(t, srv.URL, "").Run(context.Background(), d))
	for _, name := range []string{"ready", "version", "smoke"} {
		if items[name].Outcome != watch.OutcomePassed {
			t.Errorf("%s: %+v", name, items[name])
		}
	}
	if items["logs"].Outcome != watch.OutcomeSkipped {
		t.Errorf("logs without configuration must be skipped: %+v", items["logs"])
	}

	t.Run("a wrong commit names both values", func(t *testing.T) {
		it := outcomes(checklist(t, srv.URL, "").Run(context.Background(), watch.Deploy{Version: "def456"}))["version"]
		if it.Outcome != watch.OutcomeFailed || !strings.Contains(it.Evidence, ".commit abc123, but def456 was deployed") {
			t.Fatalf("%+v", it)
		}
	})
	t.Run("a not-ready dependency fails ready and smoke", func(t *testing.T) {
		var broken atomic.Bool
		broken.Store(true)
		sick := service(t, "abc123", &broken)
		items := outcomes(checklist(t, sick.URL, "").Run(context.Background(), d))
		if it := items["ready"]; it.Outcome != watch.OutcomeFailed || !strings.Contains(it.Evidence, "answered 503") || !strings.Contains(it.Evidence, "connection refused") {
			t.Fatalf("ready %+v", it)
		}
		if it := items["smoke"]; it.Outcome != watch.OutcomeFailed || !strings.Contains(it.Evidence, "health-check") {
			t.Fatalf("smoke %+v", it)
		}
	})
	t.Run("unreachable service", func(t *testing.T) {
		it := outcomes(checklist(t, "http://127.0.0.1:1", "").Run(context.Background(), d))["ready"]
		if it.Outcome != watch.OutcomeFailed || !strings.Contains(it.Evidence, "connection refused") {
			t.Fatalf("%+v", it)
		}
	})
	t.Run("no version given is skipped", func(t *testing.T) {
		if it := outcomes(checklist(t, srv.URL, "").Run(context.Background(), watch.Deploy{}))["version"]; it.Outcome != watch.OutcomeSkipped {
			t.Fatalf("%+v", it)
		}
	})
}

func TestLogsAreJudgedOnTheIncrease(t *testing.T) {
	srv := service(t, "abc123", new(atomic.Bool))
	dir := t.TempDir()
	// The command prints a steady background of errors before the deploy,
	// and what the test puts in "after" since.
	after := filepath.Join(dir, "after.log")
	cmd := `if [ "$DEPLOYWATCH_LOGS_UNTIL" = "` + "$(cat " + filepath.Join(dir, "start") + ")" + `" ]; then printf 'ERROR db timeout\nok\nERROR db timeout\n'; else cat ` + after + `; fi`
	start := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	if err := os.WriteFile(filepath.Join(dir, "start"), []byte(start.Format(time.RFC3339)), 0o600); err != nil {
		t.Fatal(err)
	}
	d := watch.Deploy{Version: "abc123", StartedAt: start}
	cases := []struct {
		name, logs string
		want       watch.Outcome
	}{
		{"no errors since", "ok\nok\n", watch.OutcomePassed},
		{"the usual background", "ERROR db timeout\nok\n", watch.OutcomePassed},
		{"a burst of new errors", strings.Repeat("panic: nil map\n", 40), watch.OutcomeFailed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(after, []byte(c.logs), 0o600); err != nil {
				t.Fatal(err)
			}
			cl := checklist(t, srv.URL, "  logs:\n    command: '"+strings.ReplaceAll(cmd, "'", "''")+"'\n    window: 5m\n")
			cl.Before(context.Background(), d)
			it := outcomes(cl.Run(context.Background(), d))["logs"]
			if it.Outcome != c.want {
				t.Fatalf("%+v", it)
			}
		})
	}
	t.Run("unreadable logs are skipped, not failed", func(t *testing.T) {
		cl := checklist(t, srv.URL, "  logs:\n    command: 'exit 3'\n")
		cl.Before(context.Background(), d)
		if it := outcomes(cl.Run(context.Background(), d))["logs"]; it.Outcome != watch.OutcomeSkipped {
			t.Fatalf("%+v", it)
		}
	})
}
