// Package command is the deploy target that drives a deploy through shell
// commands: deploy, status, current, rollback and pause hooks. Each runs in
// its own process group, streams its output line by line with a prefix,
// and is killed as a group when its timeout passes.
package command

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// killGrace is how long a hook has between SIGTERM and SIGKILL.
const killGrace = 3 * time.Second

// Target runs the hooks of a config's target.command.
type Target struct {
	cfg config.CommandTarget
	dir string
	// Output receives each line a hook prints, as "hook | line".
	output func(hook, line string)
	// DeployArgv, when set, is run instead of the deploy hook (run's
	// arguments after --), without a shell.
	DeployArgv []string

	mu sync.Mutex
	// rollbackGroup is the process group of the rollback hook while it
	// runs (or of one a previous process started), saved with the watch:
	// a hook outlives the deploywatch that started it.
	rollbackGroup int
	save          func()
}

var (
	_ watch.Platform         = (*Target)(nil)
	_ watch.RollbackFinisher = (*Target)(nil)
	_ watch.VersionReader    = (*Target)(nil)
	_ watch.Resumable        = (*Target)(nil)
	_ watch.SaveRequester    = (*Target)(nil)
)

// New returns a Target. output receives hook output lines; dir is the
// working directory for hooks ("" for the current one).
func New(cfg config.CommandTarget, dir string, output func(hook, line string)) *Target {
	if output == nil {
		output = func(string, string) {}
	}
	return &Target{cfg: cfg, dir: dir, output: output}
}

// Current runs the current hook and returns what it printed, trimmed.
// Without a current hook it returns "". A hook cannot tell the version
// before a deploy from the one after: for a watch (begun) it must be run
// before the deploy replaces the version, or report the previous one.
func (t *Target) Current(ctx context.Context, d watch.Deploy, _ bool) (string, error) {
	if t.cfg.Current == "" {
		return "", nil
	}
	out, err := t.run(ctx, "current", t.shell(t.cfg.Current), t.cfg.Timeouts.Current.D(), d)
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// Deploy runs the deploy command.
func (t *Target) Deploy(ctx context.Context, d watch.Deploy) error {
	argv := t.DeployArgv
	if len(argv) == 0 {
		if t.cfg.Deploy == "" {
			return errors.New("nothing to deploy with: give a command after -- or set target.command.deploy")
		}
		argv = t.shell(t.cfg.Deploy)
	}
	_, err := t.run(ctx, "deploy", argv, t.cfg.Timeouts.Deploy.D(), d)
	return err
}

// Progress runs the status hook: exit 0 means the new version is fully
// out, any other exit that it is not yet. Without a status hook the
// deploy command's success is the rollout.
func (t *Target) Progress(ctx context.Context, d watch.Deploy) (watch.Progress, error) {
	if t.cfg.Status == "" {
		return watch.Progress{Done: true, Message: "no status hook: the deploy command's exit is the rollout"}, nil
	}
	out, err := t.run(ctx, "status", t.shell(t.cfg.Status), t.cfg.Timeouts.Status.D(), d)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return watch.Progress{Done: true, Message: lastLine(out)}, nil
	case errors.As(err, &exit):
		return watch.Progress{Message: fmt.Sprintf("status hook: exit %d %s", exit.ExitCode(), lastLine(out))}, nil
	default:
		return watch.Progress{}, err
	}
}

// Rollback runs the rollback hook once.
func (t *Target) Rollback(ctx context.Context, d watch.Deploy) (watch.RollbackOutcome, error) {
	if t.cfg.Rollback == "" {
		return watch.RollbackOutcome{}, errors.New("no rollback hook: set target.command.rollback")
	}
	_, err := t.run(ctx, "rollback", t.shell(t.cfg.Rollback), t.cfg.Timeouts.Rollback.D(), d)
	return watch.RollbackOutcome{}, err
}

// Running runs the current hook; "" without one.
func (t *Target) Running(ctx context.Context, d watch.Deploy) (string, error) {
	return t.Current(ctx, d, false)
}

// savedState is the target's record of a watch: the rollback hook's
// process group while it runs.
type savedState struct {
	RollbackGroup int `json:"rollback_group,omitempty"`
}

// SaveState returns the running rollback hook's process group, if any.
func (t *Target) SaveState() (json.RawMessage, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return json.Marshal(savedState{RollbackGroup: t.rollbackGroup})
}

// RestoreState takes up the record of a previous process.
func (t *Target) RestoreState(_ context.Context, _ watch.Deploy, saved json.RawMessage) error {
	var st savedState
	if err := json.Unmarshal(saved, &st); err != nil {
		return fmt.Errorf("%w: the saved hooks record: %v", watch.ErrStateCorrupt, err)
	}
	t.mu.Lock()
	t.rollbackGroup = st.RollbackGroup
	t.mu.Unlock()
	return nil
}

// RequestSaves takes the engine's save, called once a rollback hook has
// started so that its process group is in the state.
func (t *Target) RequestSaves(save func()) {
	t.mu.Lock()
	t.save = save
	t.mu.Unlock()
}

// FinishRollback finishes a rollback that was under way when deploywatch
// stopped. A rollback hook outlives the process that started it: while
// its process group still runs, it is waited for (within the rollback
// timeout). Then the current hook tells whether the version recorded at
// Start runs: if so nothing is done; if not, the hook that ran is over
// (it failed or was killed with its job), and the rollback is run to the
// end. Without a current hook nothing can tell, and the hook is not run a
// second time.
func (t *Target) FinishRollback(ctx context.Context, d watch.Deploy) (watch.RollbackOutcome, error) {
	t.mu.Lock()
	group := t.rollbackGroup
	t.mu.Unlock()
	if group > 0 {
		if err := t.waitGroup(ctx, group); err != nil {
			return watch.RollbackOutcome{}, err
		}
	}
	if t.cfg.Current == "" {
		return watch.RollbackOutcome{}, errors.New("deploywatch stopped while the rollback hook ran, and without a current hook (target.command.current) it cannot tell whether the rollback finished: it is not run twice; check the service by hand")
	}
	running, err := t.Current(ctx, d, false)
	if err != nil {
		return watch.RollbackOutcome{}, fmt.Errorf("finding out whether the rollback finished: %w", err)
	}
	if running == d.PreviousVersion && running != "" {
		return watch.RollbackOutcome{Note: fmt.Sprintf("%s already runs: the rollback hook had finished before deploywatch stopped", running)}, nil
	}
	out, err := t.Rollback(ctx, d)
	if err == nil {
		out.Note = fmt.Sprintf("%s ran when the watch was taken up again and no rollback hook was running, so it was run to the end", orNone(running))
	}
	return out, err
}

// waitGroup waits, within the rollback timeout, until no process of the
// group runs.
func (t *Target) waitGroup(ctx context.Context, group int) error {
	limit := t.cfg.Timeouts.Rollback.D()
	deadline := time.Now().Add(limit)
	for syscall.Kill(-group, 0) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("the rollback hook a previous deploywatch started (process group %d) still runs after %s: it is not run twice", group, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// Pause runs the pause hook, if any.
func (t *Target) Pause(ctx context.Context, d watch.Deploy) error {
	if t.cfg.Pause == "" {
		return nil
	}
	_, err := t.run(ctx, "pause", t.shell(t.cfg.Pause), t.cfg.Timeouts.Pause.D(), d)
	return err
}

func (t *Target) shell(command string) []string { return []string{t.cfg.Shell, "-c", command} }

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// HookError is a hook that did not succeed.
type HookError struct {
	Hook     string
	ExitCode int // -1 when it did not exit by itself
	TimedOut bool
	Err      error
	// Tail is the end of the hook's output, for the report.
	Tail string
}

func (e *HookError) Error() string {
	switch {
	case e.TimedOut:
		return fmt.Sprintf("%s hook timed out; its process group was killed", e.Hook)
	case e.ExitCode >= 0:
		msg := fmt.Sprintf("%s hook exited %d", e.Hook, e.ExitCode)
		if e.Tail != "" {
			msg += ": " + lastLine(e.Tail)
		}
		return msg
	default:
		return fmt.Sprintf("%s hook: %v", e.Hook, e.Err)
	}
}

func (e *HookError) Unwrap() error { return e.Err }

// run starts argv in its own process group with the deploy's environment,
// streams its output, and kills the group when ctx ends or timeout passes.
func (t *Target) run(ctx context.Context, hook string, argv []string, timeout time.Duration, d watch.Deploy) (string, error) {
	errTimeout := fmt.Errorf("%s hook ran longer than %s", hook, timeout)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimeout)
	defer cancel()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = t.dir
	cmd.Env = append(os.Environ(),
		"DEPLOYWATCH_SERVICE="+d.Service,
		"DEPLOYWATCH_ENVIRONMENT="+d.Environment,
		"DEPLOYWATCH_VERSION="+d.Version,
		"DEPLOYWATCH_PREVIOUS_VERSION="+d.PreviousVersion,
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return "", &HookError{Hook: hook, ExitCode: -1, Err: err}
	}
	if hook == "rollback" {
		t.rolling(cmd.Process.Pid)
		defer t.rolling(0)
	}
	var (
		wg   sync.WaitGroup
		tail tailBuffer
	)
	wg.Go(func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			tail.add(line)
			t.output(hook, line)
		}
		_, _ = io.Copy(io.Discard, pr)
	})
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var err error
	stopped := false // by the timeout or by the caller
	select {
	case err = <-done:
	case <-ctx.Done():
		stopped = true
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(killGrace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			err = <-done
		}
	}
	_ = pw.Close()
	wg.Wait()
	out := tail.String()
	if stopped {
		cause := context.Cause(ctx)
		return out, &HookError{Hook: hook, ExitCode: -1, TimedOut: cause == errTimeout, Err: cause, Tail: out}
	}
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return out, &HookError{Hook: hook, ExitCode: exit.ExitCode(), Err: exit, Tail: out}
		}
		return out, &HookError{Hook: hook, ExitCode: -1, Err: err, Tail: out}
	}
	return out, nil
}

// rolling records the rollback hook's process group (0: none) and, once it
// has started, has the watch's state say so.
func (t *Target) rolling(group int) {
	t.mu.Lock()
	t.rollbackGroup = group
	save := t.save
	t.mu.Unlock()
	if group > 0 && save != nil {
		save()
	}
}

// tailBuffer keeps the last lines a hook printed.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
}

const tailLines = 50

func (b *tailBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, line)
	if len(b.lines) > tailLines {
		b.lines = b.lines[len(b.lines)-tailLines:]
	}
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}
