package integration

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/testsvc"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// TestKilledAtRandomPoints runs 50 watches of a bad release with the real
// binary, each SIGKILLed at random moments (up to three times) and resumed
// with `watch --resume` after each kill, as a CI runner or a node that
// dies would leave it. Every run must end with the release deployed once
// and rolled back exactly once, and a complete report. The metric source
// is deploywatch's embedded engine scraping a real test service, so the
// judge's statistics decide, as in production. DEPLOYWATCH_KILL_RUNS sets
// another number of runs; the seed is logged for replaying a failure.
func TestKilledAtRandomPoints(t *testing.T) {
	runs := 50
	if n, err := fmt.Sscan(os.Getenv("DEPLOYWATCH_KILL_RUNS"), &runs); n != 1 || err != nil {
		runs = 50
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	bin := buildBinary(t)
	var kills, resumes atomic.Int64
	for i := range runs {
		t.Run(fmt.Sprintf("run %d", i), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			svc := startService(t, testsvc.Profile{Version: "v1", ErrorRatio: 0.001, Latency: 1}, 50)
			svc.Stage(testsvc.Profile{Version: "v2", ErrorRatio: 0.3, Latency: 1})
			dir := t.TempDir()
			cfg := filepath.Join(dir, "deploywatch.yaml")
			err := os.WriteFile(cfg, []byte(fmt.Sprintf(`service: api
target:
  command:
    deploy: "curl -sf -X POST http://%[1]s/admin/deploy"
    rollback: "curl -sf -X POST http://%[1]s/admin/rollback"
    current: "curl -sf http://%[1]s/admin/state | jq -r .version"
metrics:
  embedded:
    scrape: [{job: api, targets: ["%[1]s"], interval: 250ms}]
  selector: 'job="api"'
baseline: {window: 2s}
phases: {warmup: 1s, verify: 1s, monitor: 10s, interval: 500ms}
`, svc.Addr)), 0o600)
			if err != nil {
				t.Fatal(err)
			}
			state, report := filepath.Join(dir, "watch.state"), filepath.Join(dir, "report.json")
			args := []string{"run", "-f", cfg, "--version", "v2", "--state", state, "--report", report}
			var out strings.Builder
			code := -1
			for attempt := 0; ; attempt++ {
				cmd := exec.Command(bin, args...)
				var buf syncBuffer
				cmd.Stdout, cmd.Stderr = &buf, &buf
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				var killAfter <-chan time.Time
				if windows := []time.Duration{6 * time.Second, 3 * time.Second, 2 * time.Second}; attempt < len(windows) {
					// Anywhere in a watch: the baseline, the deploy, the
					// warm-up, the detection or the rollback; a resumed
					// watch has less left to do.
					killAfter = time.After(time.Duration(rng.Int64N(int64(windows[attempt]))))
				}
				select {
				case err := <-done:
					code = exitCode(err)
				case <-killAfter:
					_ = cmd.Process.Signal(syscall.SIGKILL)
					if err := <-done; exitCode(err) == -1 {
						kills.Add(1)
					} else {
						code = exitCode(err) // it had ended by itself
					}
				case <-time.After(2 * time.Minute):
					_ = cmd.Process.Kill()
					t.Fatalf("attempt %d still running after 2 minutes\n%s", attempt, buf.String())
				}
				fmt.Fprintf(&out, "--- attempt %d (%v) exit %d\n%s", attempt, args[0], code, buf.String())
				if code != -1 {
					break
				}
				if _, err := os.Stat(state); errors.Is(err, os.ErrNotExist) {
					// Killed before its first checkpoint: nothing happened yet.
					if _, deploys, _ := svc.Current(); deploys != 0 {
						t.Fatalf("deployed without a state file\n%s", out.String())
					}
					continue
				}
				args = []string{"watch", "--resume", state}
				resumes.Add(1)
			}
			cur, deploys, rollbacks := svc.Current()
			if code != 1 || deploys != 1 || rollbacks != 1 || cur.Version != "v1" {
				t.Fatalf("exit %d; %d deploys, %d rollbacks, running %s: want exit 1, one deploy, one rollback, v1\n%s",
					code, deploys, rollbacks, cur.Version, out.String())
			}
			rep := readReport(t, report)
			if rep.Verdict != watch.Failed || rep.Rollback == nil || !rep.Rollback.OK || rep.Rollback.Revision != "v1" || rep.DetectedAt == nil {
				t.Fatalf("report: verdict %s, rollback %+v\n%s", rep.Verdict, rep.Rollback, out.String())
			}
			for _, ph := range rep.Phases {
				if ph.EndedAt == nil {
					t.Fatalf("phase %s left open in the report\n%s", ph.Name, out.String())
				}
			}
		})
	}
	t.Cleanup(func() { t.Logf("%d runs, %d kills, %d resumes", runs, kills.Load(), resumes.Load()) })
}
