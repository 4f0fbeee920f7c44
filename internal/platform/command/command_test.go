package command

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
	dir := t.TempDir()
	marker := filepath.Join(dir, "survived")
	// The hook starts a grandchild that would write the marker later.
	tg, _ := target(t, config.CommandTarget{
		Rollback: "(sleep 2; touch " + marker + ") & sleep 30",
		Timeouts: config.HookTimeouts{Rollback: config.Duration(300 * time.Millisecond)},
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
	time.Sleep(2500 * time.Millisecond) // longer than the grandchild's sleep
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a grandchild of the hook survived the timeout")
	}
}

func TestCancelIsNotATimeout(t *testing.T) {
	tg, _ := target(t, config.CommandTarget{Rollback: "sleep 30"})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
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
	v, err := tg.Current(context.Background(), d)
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
