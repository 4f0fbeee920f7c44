package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/testsvc"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// buildBinary builds deploywatch once per test binary.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "deploywatch")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/deploywatch")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startWatch runs the real binary; rollback, when set, replaces the
// rollback hook.
func startWatch(t *testing.T, bin string, e *env, rollback string) (*exec.Cmd, *syncBuffer, string) {
	t.Helper()
	cfg := filepath.Join(e.dir, "deploywatch.yaml")
	src := configFor(e.svc.Addr, e.prom.URL, "")
	if rollback != "" {
		src = strings.Replace(src, `rollback: "curl -sf -X POST http://`+e.svc.Addr+`/admin/rollback"`, "rollback: '"+rollback+"'", 1)
	}
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(e.dir, "report.json")
	out := &syncBuffer{}
	cmd := exec.Command(bin, "run", "-f", cfg, "--version", "v2", "--report", report, "--output", "json")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out, report
}

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func readReport(t *testing.T, path string) *watch.Report {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no report: %v", err)
	}
	var r watch.Report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestSignals(t *testing.T) {
	if _, ok := testenv.PrometheusBinary(); !ok {
		testenv.Missing(t, "prometheus", "Debian package prometheus")
	}
	bin := buildBinary(t)

	t.Run("SIGTERM mid-monitor writes an inconclusive report and rolls nothing back", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, healthy, 50, 10*time.Second)
		e.svc.Stage(testsvc.Profile{Version: "v2", ErrorRatio: 0.001, Latency: 1})
		cmd, out, report := startWatch(t, bin, e, "")
		waitFor(t, "the monitor phase", 60*time.Second, func() bool { return strings.Contains(out.String(), `"event":"measured"`) })
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if code := exitCode(cmd.Wait()); code != 3 {
			t.Fatalf("exit %d, want 3\n%s", code, out)
		}
		r := readReport(t, report)
		if r.Verdict != watch.Inconclusive || r.Rollback != nil {
			t.Fatalf("verdict %s rollback %+v", r.Verdict, r.Rollback)
		}
		last := r.Phases[len(r.Phases)-1]
		if last.Name != watch.PhaseMonitor || last.Outcome != watch.OutcomeInterrupted {
			t.Errorf("last phase %+v", last)
		}
		if _, _, rb := e.svc.Current(); rb != 0 {
			t.Errorf("%d rollbacks", rb)
		}
	})

	t.Run("SIGTERM during a rollback lets it finish and reports it", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, healthy, 50, 10*time.Second)
		e.svc.Stage(testsvc.Profile{Version: "v2", ErrorRatio: 0.3, Latency: 1})
		marker := filepath.Join(e.dir, "rollback-started")
		// A slow rollback: it announces itself, then takes 2s.
		cmd, out, report := startWatch(t, bin, e, "touch "+marker+"; sleep 2; curl -sf -X POST http://"+e.svc.Addr+"/admin/rollback")
		waitFor(t, "the rollback to start", 60*time.Second, func() bool { _, err := os.Stat(marker); return err == nil })
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if code := exitCode(cmd.Wait()); code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, out)
		}
		r := readReport(t, report)
		if r.Verdict != watch.Failed || r.Rollback == nil || !r.Rollback.Performed || !r.Rollback.OK {
			t.Fatalf("verdict %s rollback %+v", r.Verdict, r.Rollback)
		}
		if cur, _, rb := e.svc.Current(); rb != 1 || cur.Version != "v1" {
			t.Fatalf("service runs %s after %d rollbacks", cur.Version, rb)
		}
	})

	t.Run("a second SIGTERM aborts the rollback, and the report says so", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, healthy, 50, 10*time.Second)
		e.svc.Stage(testsvc.Profile{Version: "v2", ErrorRatio: 0.3, Latency: 1})
		marker := filepath.Join(e.dir, "rollback-started")
		cmd, out, report := startWatch(t, bin, e, "touch "+marker+"; sleep 30")
		waitFor(t, "the rollback to start", 60*time.Second, func() bool { _, err := os.Stat(marker); return err == nil })
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waitFor(t, "the first signal to be taken", 10*time.Second, func() bool {
			return strings.Contains(out.String(), "a rollback in progress is finished first")
		})
		_ = cmd.Process.Signal(syscall.SIGTERM)
		start := time.Now()
		if code := exitCode(cmd.Wait()); code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, out)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Errorf("took %s to stop after the second signal", el)
		}
		r := readReport(t, report)
		if r.Rollback == nil || !r.Rollback.Performed || r.Rollback.OK || !strings.Contains(r.Rollback.Error, "aborted") {
			t.Fatalf("rollback %+v", r.Rollback)
		}
	})
}
