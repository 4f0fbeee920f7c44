package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/watch"
)

func target(t *testing.T, c config.CommandTarget) (*Target, *[]string) {
	t.Helper()
	if c.Shell == "" {
		c.Shell = "/bin/sh"
	}
	for _, d := range []*config.Duration{&c.Timeouts.Deploy, &c.Timeouts.Rollback, &c.Timeouts.Status, &c.Timeouts.Current, &c.Timeouts.Pause} {
		if *d == 0 {
			*d = config.Duration(10 * time.Second)
		}
	}
	var mu sync.Mutex
	var lines []string
	return New(c, t.TempDir(), func(hook, line string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, hook+" | "+line)
	}), &lines
}

var d = watch.Deploy{Service: "api", Environment: "staging", Version: "v2", PreviousVersion: "v1"}

func TestRollbackGetsTheDeployInItsEnvironment(t *testing.T) {
	tg, lines := target(t, config.CommandTarget{Rollback: `echo "$DEPLOYWATCH_SERVICE $DEPLOYWATCH_VERSION -> $DEPLOYWATCH_PREVIOUS_VERSION"; echo to stderr >&2`})
	if _, err := tg.Rollback(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(*lines, "\n")
	if !strings.Contains(got, "rollback | api v2 -> v1") || !strings.Contains(got, "rollback | to stderr") {
		t.Errorf("output %q", got)
	}
}

func TestHookExitCodeAndTail(t *testing.T) {
	tg, _ := target(t, config.CommandTarget{Deploy: "echo applying; echo 'no such image' >&2; exit 3"})
	err := tg.Deploy(context.Background(), d)
	var he *HookError
	if !errors.As(err, &he) || he.ExitCode != 3 || !strings.Contains(err.Error(), "deploy hook exited 3: no such image") {
		t.Fatalf("err = %v", err)
	}
}

func TestTimeoutKillsTheWholeProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	// The hook starts a long-lived grandchild, waits until it has written
	// its pid, and hangs.
	tg, _ := target(t, config.CommandTarget{
		Rollback: "sh -c 'echo $$ > " + pidFile + "; exec sleep 30' & while [ ! -s " + pidFile + " ]; do :; done; sleep 30",
		Timeouts: config.HookTimeouts{Rollback: config.Duration(time.Second)},
	})
	start := time.Now()
	_, err := tg.Rollback(context.Background(), d)
	var he *HookError
	if !errors.As(err, &he) || !he.TimedOut {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %s to give up", el)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the grandchild never started: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// The group was signalled before the hook returned; the grandchild is
	// gone once the kernel has delivered it (a zombie waiting for its new
	// parent to reap it counts as gone).
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the hook's grandchild (pid %d) survived the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs: it exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func TestCancelIsNotATimeout(t *testing.T) {
	tg, _ := target(t, config.CommandTarget{Rollback: "sleep 30"})
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	tg.output = func(hook, line string) {
		if line == "started" {
			close(started)
		}
	}
	tg.cfg.Rollback = "echo started; sleep 30"
	go func() { <-started; cancel() }()
	_, err := tg.Rollback(ctx, d)
	var he *HookError
	if !errors.As(err, &he) || he.TimedOut || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestProgressAndCurrent(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "done")
	tg, _ := target(t, config.CommandTarget{
		Status:  "test -f " + flag + " && echo '3/3 updated' || { echo '1/3 updated'; exit 1; }",
		Current: "echo noise; echo v1",
	})
	p, err := tg.Progress(context.Background(), d)
	if err != nil || p.Done || !strings.Contains(p.Message, "1/3") {
		t.Fatalf("progress %+v %v", p, err)
	}
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err = tg.Progress(context.Background(), d)
	if err != nil || !p.Done || p.Message != "3/3 updated" {
		t.Fatalf("progress %+v %v", p, err)
	}
	v, err := tg.Current(context.Background(), d, false)
	if err != nil || v != "v1" {
		t.Fatalf("current %q %v", v, err)
	}
}

func TestDeployArgvRunsWithoutAShell(t *testing.T) {
	tg, lines := target(t, config.CommandTarget{Deploy: "echo from-config"})
	tg.DeployArgv = []string{"/bin/echo", "$NOT_EXPANDED", "two words"}
	if err := tg.Deploy(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(*lines, "\n"); got != "deploy | $NOT_EXPANDED two words" {
		t.Errorf("output %q", got)
	}
}

func TestMissingHooks(t *testing.T) {
	tg, _ := target(t, config.CommandTarget{})
	if _, err := tg.Rollback(context.Background(), d); err == nil {
		t.Error("rollback without a hook succeeded")
	}
	if err := tg.Pause(context.Background(), d); err != nil {
		t.Errorf("pause without a hook: %v", err)
	}
	if p, err := tg.Progress(context.Background(), d); err != nil || !p.Done {
		t.Errorf("progress without a status hook: %+v %v", p, err)
	}
}

// A rollback hook outlives the deploywatch that started it: a resumed
// watch waits for its process group, then finds the version it restored
// and does not run it a second time.
func TestFinishRollbackWaitsForTheHookStillRunning(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "running")
	if err := os.WriteFile(state, []byte("v2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.CommandTarget{
		Rollback: "echo x >> " + dir + "/rollbacks; sleep 1; echo v1 > " + state,
		Current:  "cat " + state,
	}
	first, _ := target(t, cfg)
	saved := make(chan json.RawMessage, 1)
	first.RequestSaves(func() {
		raw, _ := first.SaveState()
		saved <- raw
	})
	go func() { _, _ = first.Rollback(context.Background(), d) }()
	raw := <-saved // the hook has started: "deploywatch dies" here
	second, _ := target(t, cfg)
	if err := second.RestoreState(context.Background(), d, raw); err != nil {
		t.Fatal(err)
	}
	out, err := second.FinishRollback(context.Background(), d)
	if err != nil || !strings.Contains(out.Note, "v1 already runs") {
		t.Fatalf("%+v, %v", out, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "rollbacks")); strings.Count(string(b), "x") != 1 {
		t.Fatalf("the rollback hook ran %d times", strings.Count(string(b), "x"))
	}
	if err := second.RestoreState(context.Background(), d, []byte("{")); !errors.Is(err, watch.ErrStateCorrupt) {
		t.Fatalf("a corrupt record: %v", err)
	}
}
