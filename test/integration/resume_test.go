package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/testsvc"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// process is a deploywatch binary running in the background, its output
// followed as it comes.
type process struct {
	cmd *exec.Cmd
	out *syncBuffer
}

func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), out: &syncBuffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	return p
}

// waitEvent waits until the process has printed (--output json) an event
// whose line holds every one of parts.
func (p *process) waitEvent(t *testing.T, timeout time.Duration, parts ...string) {
	t.Helper()
	waitFor(t, strings.Join(parts, " "), timeout, func() bool {
		for line := range strings.SplitSeq(p.out.String(), "\n") {
			all := true
			for _, part := range parts {
				all = all && strings.Contains(line, part)
			}
			if all {
				return true
			}
		}
		return false
	})
}

// kill kills the process with SIGKILL, as an OOM kill or a lost node
// would, and waits for it.
func (p *process) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	if err := p.cmd.Wait(); exitCode(err) != -1 {
		t.Fatalf("the process ended by itself (%v) before it was killed\n%s", err, p.out)
	}
}

func (p *process) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(err)
	case <-time.After(timeout):
		t.Fatalf("still running after %s\n%s", timeout, p.out)
		return 0
	}
}

// TestResumeAgainstRealPrometheus kills the real binary (SIGKILL) in the
// middle of a watch of a bad release and resumes it with another process:
// the release is rolled back once, the report is whole, and a rollback
// that had already happened is not done again.
func TestResumeAgainstRealPrometheus(t *testing.T) {
	if _, ok := testenv.PrometheusBinary(); !ok {
		testenv.Missing(t, "prometheus", "Debian package prometheus")
	}
	bin := buildBinary(t)
	bad := testsvc.Profile{Version: "v2", ErrorRatio: 0.05, Latency: 1}

	start := func(t *testing.T, e *env, rollback string) (*process, string, string, string) {
		cfg := filepath.Join(e.dir, "deploywatch.yaml")
		src := configFor(e.svc.Addr, e.prom.URL, "")
		if rollback != "" {
			src = strings.Replace(src, `rollback: "curl -sf -X POST http://`+e.svc.Addr+`/admin/rollback"`, "rollback: '"+rollback+"'", 1)
		}
		if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		state, report := filepath.Join(e.dir, "watch.state"), filepath.Join(e.dir, "report.json")
		p := startProcess(t, bin, "run", "-f", cfg, "--version", "v2", "--state", state, "--report", report, "-o", "json")
		return p, cfg, state, report
	}

	t.Run("killed in the monitor of a bad release, resumed: rolled back once", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, healthy, 50, 20*time.Second)
		e.svc.Stage(bad)
		p, _, state, report := start(t, e, "")
		// Killed as the monitor begins: the sequential judge can decide 5%
		// at its first look, so a kill after a look may come too late.
		p.waitEvent(t, 90*time.Second, `"event":"phase_started"`, `"phase":"monitor"`)
		p.kill(t)
		saved := readReport(t, report)
		if saved.Verdict != watch.InProgress || saved.Phases[len(saved.Phases)-1].Name != watch.PhaseMonitor {
			t.Fatalf("the report left by the killed process: verdict %s, phases %v", saved.Verdict, phaseNames(saved))
		}
		if _, _, rollbacks := e.svc.Current(); rollbacks != 0 {
			t.Fatalf("%d rollbacks before the resume: the kill came too late", rollbacks)
		}
		r := startProcess(t, bin, "watch", "--resume", state, "-o", "json")
		if code := r.wait(t, 2*time.Minute); code != 1 {
			t.Fatalf("resume: exit %d, want 1\n%s", code, r.out)
		}
		rep := readReport(t, report)
		cur, deploys, rollbacks := e.svc.Current()
		if deploys != 1 || rollbacks != 1 || cur.Version != "v1" {
			t.Fatalf("deploys %d, rollbacks %d, running %s: want one of each and v1", deploys, rollbacks, cur.Version)
		}
		if rep.Verdict != watch.Failed || !strings.HasPrefix(rep.Reason, "error_rate:") || rep.Rollback == nil || !rep.Rollback.OK ||
			rep.Rollback.Revision != "v1" || len(rep.Resumes) != 1 || rep.Deploy.StartedAt != saved.Deploy.StartedAt {
			t.Fatalf("report: verdict %s (%s), rollback %+v, resumes %v, started %s (saved %s)",
				rep.Verdict, rep.Reason, rep.Rollback, rep.Resumes, rep.Deploy.StartedAt, saved.Deploy.StartedAt)
		}
		for _, ph := range rep.Phases {
			if ph.EndedAt == nil {
				t.Errorf("phase %s left open", ph.Name)
			}
		}
		if b := findReportCheck(rep, "error_rate").Baseline; b == nil || *b > 0.01 {
			t.Errorf("the resumed watch's baseline %v is not the one measured before the deploy", b)
		}
		// A second resume finds the watch ended and touches nothing.
		again := startProcess(t, bin, "watch", "--resume", state)
		if code := again.wait(t, 30*time.Second); code != 1 || !strings.Contains(again.out.String(), "had already ended failed") {
			t.Fatalf("second resume: exit %d\n%s", code, again.out)
		}
		if _, _, n := e.svc.Current(); n != 1 {
			t.Fatalf("%d rollbacks after the second resume", n)
		}
	})

	t.Run("killed after the rollback hook acted, resumed: not rolled back again", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, healthy, 50, 20*time.Second)
		e.svc.Stage(bad)
		// The hook rolls back, says so with its process group (a hook leads
		// its own), and hangs: deploywatch dies before it can record the
		// outcome.
		pgFile := filepath.Join(e.dir, "rollback.pgid")
		hook := fmt.Sprintf("curl -sf -X POST http://%s/admin/rollback && echo $$ > %s.tmp && mv %s.tmp %s; sleep 60", e.svc.Addr, pgFile, pgFile, pgFile)
		p, _, state, report := start(t, e, hook)
		waitFor(t, "the rollback hook to act", 2*time.Minute, func() bool { _, err := os.Stat(pgFile); return err == nil })
		p.kill(t)
		// The whole job dies, as a CI runner killed with its children.
		if b, err := os.ReadFile(pgFile); err == nil {
			if pgid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
		}
		if _, _, n := e.svc.Current(); n != 1 {
			t.Fatalf("%d rollbacks before the resume", n)
		}
		r := startProcess(t, bin, "watch", "--resume", state, "-o", "json")
		if code := r.wait(t, time.Minute); code != 1 {
			t.Fatalf("resume: exit %d, want 1\n%s", code, r.out)
		}
		cur, _, rollbacks := e.svc.Current()
		if rollbacks != 1 || cur.Version != "v1" {
			t.Fatalf("after the resume: %d rollbacks, running %s; want the one rollback and v1", rollbacks, cur.Version)
		}
		rep := readReport(t, report)
		if rep.Rollback == nil || !rep.Rollback.OK || !strings.Contains(rep.Rollback.Note, "v1 already runs") {
			t.Fatalf("rollback record %+v", rep.Rollback)
		}
	})
}

func phaseNames(r *watch.Report) []string {
	var names []string
	for _, p := range r.Phases {
		names = append(names, p.Name)
	}
	return names
}
