package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/testsvc"
	"github.com/deploywatch/deploywatch/internal/watch"
)

const ingestToken = "ci-token-0123456789abcdef"

// historyServe is serve as a history server only, over a real SQLite
// store, with a CI token that may ingest.
func historyServe(t *testing.T, bin, dir string) *serveProc {
	return startServe(t, bin, dir, `store: {sqlite: `+filepath.Join(dir, "history.db")+`}
api:
  open_read: true
  tokens:
    - {name: ci, scopes: [ingest], token_env: DW_CI_TOKEN}
`, "DW_CI_TOKEN="+ingestToken)
}

type historyDeploy struct {
	ID      string `json:"id"`
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
	Deploy  struct {
		Service         string     `json:"service"`
		Version         string     `json:"version"`
		PreviousVersion string     `json:"previous_version"`
		CommitTime      *time.Time `json:"commit_time"`
	} `json:"deploy"`
	DetectedAt *time.Time `json:"detected_at"`
	Rollback   *struct {
		Performed bool `json:"performed"`
		OK        bool `json:"ok"`
	} `json:"rollback"`
	Events []struct {
		Event struct {
			Kind string `json:"event"`
		} `json:"event"`
	} `json:"events"`
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// startRun runs the real binary's run of a bad release with --server.
func startRun(t *testing.T, bin string, e *env, serverURL string) (*process, string) {
	t.Helper()
	cfg := filepath.Join(e.dir, "deploywatch.yaml")
	if err := os.WriteFile(cfg, []byte(configFor(e.svc.Addr, e.prom.URL, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(e.dir, "report.json")
	p := &process{out: &syncBuffer{}}
	p.cmd = exec.Command(bin, "run", "-f", cfg, "--version", "v2", "--report", report, "-o", "json", "--server", serverURL)
	p.cmd.Env = append(os.Environ(), "DEPLOYWATCH_SERVER_TOKEN="+ingestToken, "DEPLOYWATCH_COMMIT_TIME=2026-11-30T09:40:00Z")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	return p, report
}

func serverDelivery(r *watch.Report) *watch.Delivery {
	for i, d := range r.Deliveries {
		if d.Sink == "server" {
			return &r.Deliveries[i]
		}
	}
	return nil
}

// TestRunRecordedByServe: a CI run of a bad release with --server appears
// in serve's history with its rollback; with serve gone mid-watch, the run
// still rolls back on time and its report says what serve did not get.
func TestRunRecordedByServe(t *testing.T) {
	if _, ok := testenv.PrometheusBinary(); !ok {
		testenv.Missing(t, "prometheus", "Debian package prometheus")
	}
	bin := buildBinary(t)
	bad := testsvc.Profile{Version: "v2", ErrorRatio: 0.05, Latency: 1}

	t.Run("a bad release is in the history with its rollback", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, healthy, 50, 20*time.Second)
		e.svc.Stage(bad)
		s := historyServe(t, bin, t.TempDir())
		p, reportPath := startRun(t, bin, e, s.url)
		// While the watch runs, serve has it in progress.
		p.waitEvent(t, 90*time.Second, `"event":"measured"`, `"phase":"monitor"`)
		var list struct {
			Deploys []historyDeploy `json:"deploys"`
		}
		waitFor(t, "the deploy in serve's history", 30*time.Second, func() bool {
			getJSON(t, s.url+"/api/v1/deploys?service=api", &list)
			return len(list.Deploys) == 1
		})
		if code := p.wait(t, 2*time.Minute); code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, p.out)
		}
		rep := readReport(t, reportPath)
		if d := serverDelivery(rep); d == nil || !d.OK {
			t.Fatalf("the report's delivery to serve: %+v", d)
		}
		var got historyDeploy
		getJSON(t, s.url+"/api/v1/deploys/"+list.Deploys[0].ID, &got)
		if got.Verdict != "failed" || !strings.HasPrefix(got.Reason, "error_rate:") || got.Rollback == nil || !got.Rollback.Performed || !got.Rollback.OK {
			t.Fatalf("serve recorded verdict %s (%s), rollback %+v; want failed on error_rate, rolled back", got.Verdict, got.Reason, got.Rollback)
		}
		if got.Deploy.Version != "v2" || got.Deploy.PreviousVersion != "v1" || got.DetectedAt == nil ||
			got.Deploy.CommitTime == nil || !got.Deploy.CommitTime.Equal(time.Date(2026, 11, 30, 9, 40, 0, 0, time.UTC)) {
			t.Fatalf("serve recorded %+v, detected %v", got.Deploy, got.DetectedAt)
		}
		var kinds []string
		for _, e := range got.Events {
			kinds = append(kinds, e.Event.Kind)
		}
		for _, want := range []string{"started", "baseline", "breached", "rollback_started", "rollback_done", "verdict"} {
			if !strings.Contains(" "+strings.Join(kinds, " ")+" ", " "+want+" ") {
				t.Errorf("serve's events %v lack %s", kinds, want)
			}
		}
	})

	t.Run("serve gone mid-watch: rolled back on time, the report says what was lost", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, healthy, 50, 20*time.Second)
		e.svc.Stage(bad)
		s := historyServe(t, bin, t.TempDir())
		p, reportPath := startRun(t, bin, e, s.url)
		p.waitEvent(t, 90*time.Second, `"event":"phase_started"`, `"phase":"warmup"`)
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		_ = s.cmd.Wait()
		if code := p.wait(t, 2*time.Minute); code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, p.out)
		}
		rep := readReport(t, reportPath)
		if _, _, rollbacks := e.svc.Current(); rollbacks != 1 || rep.Rollback == nil || !rep.Rollback.OK {
			t.Fatalf("%d rollbacks, report's %+v: want the one rollback", rollbacks, rep.Rollback)
		}
		var rollout time.Time
		for _, ph := range rep.Phases {
			if ph.Name == watch.PhaseRollout {
				rollout = ph.StartedAt
			}
		}
		if detect := rep.DetectedAt.Sub(rollout); detect > 30*time.Second {
			t.Errorf("detected %s after the deploy with serve gone, want within 30s as without --server", detect)
		}
		d := serverDelivery(rep)
		if d == nil || d.OK || !strings.Contains(d.Error, "not delivered to "+s.url) || !strings.Contains(d.Error, "events") ||
			!strings.Contains(d.Error, "the report") {
			t.Fatalf("the report's delivery to serve: %+v; want it said not delivered, with what", d)
		}
		if !strings.Contains(p.out.String(), "not delivered to "+s.url) {
			t.Errorf("the run did not say what serve did not get:\n%s", p.out)
		}
	})
}
