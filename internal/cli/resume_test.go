package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/watch"
)

// interruptedWatch runs a watch with --state and stops it (as Ctrl-C
// would) once its deploy hook has run, leaving a state to resume. The
// hooks append to files, so that a test can count what ran.
func interruptedWatch(t *testing.T) (cfg, state, dir string) {
	t.Helper()
	dir = t.TempDir()
	cfg = filepath.Join(dir, "deploywatch.yaml")
	body := strings.Replace(strings.Replace(unreachable,
		`deploy: "echo deploying $DEPLOYWATCH_VERSION"`, `deploy: "echo x >> `+dir+`/deploys"`, 1),
		`rollback: "echo rolling back"`, `rollback: "echo x >> `+dir+`/rollbacks"`, 1)
	body = strings.Replace(body, "  verify: 5s", "  verify: 1s", 1)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	state = filepath.Join(dir, "watch.state")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(dir, "deploys")); err == nil {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var out bytes.Buffer
	code := Run(ctx, []string{"run", "-f", cfg, "--version", "v2", "--state", state}, &out, &out, WithEnv(func(string) (string, bool) { return "", false }))
	if code != ExitInconclusive {
		t.Fatalf("the interrupted run: exit %d\n%s", code, out.String())
	}
	return cfg, state, dir
}

func count(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "x")
}

func TestResumeRefusals(t *testing.T) {
	cfg, state, dir := interruptedWatch(t)
	good, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	s, err := watch.DecodeState(good)
	if err != nil {
		t.Fatal(err)
	}
	if !s.DeployBegan || s.Report.Verdict != watch.InProgress {
		t.Fatalf("the saved state: deploy began %v, verdict %s", s.DeployBegan, s.Report.Verdict)
	}
	edit := func(f func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	otherConfig := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(otherConfig, []byte(strings.Replace(unreachable, "service: api", "service: web", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		state string
		args  []string
		says  string
	}{
		{"empty", "", nil, "the file is empty"},
		{"corrupt", "{\x00garbage", nil, "truncated or corrupt JSON"},
		{"truncated", string(good[:len(good)*2/3]), nil, "truncated or corrupt JSON"},
		{"newer format", edit(func(m map[string]any) { m["state_version"] = 7 }), nil, "state_version 7, and this deploywatch reads up to 1"},
		{"another service", edit(func(m map[string]any) {
			m["report"].(map[string]any)["deploy"].(map[string]any)["service"] = "web"
		}), nil, `it is a watch of service "web"`},
		{"another config given with -f", string(good), []string{"-f", otherConfig}, "is not the one the watch began with"},
		{"another version", string(good), []string{"--version", "v3"}, "the saved watch is of version v2"},
		{"a flag the state holds", string(good), []string{"--started-at", "90s"}, "--started-at cannot be given with --resume"},
		{"no origin", edit(func(m map[string]any) { delete(m, "origin") }), nil, "does not name its config file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "watch.state")
			if err := os.WriteFile(path, []byte(c.state), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out := run(t, append([]string{"watch", "--resume", path}, c.args...)...)
			if code != ExitUsage || !strings.Contains(out, c.says) {
				t.Fatalf("exit %d, want 2 saying %q:\n%s", code, c.says, out)
			}
		})
	}

	t.Run("a changed config", func(t *testing.T) {
		orig, _ := os.ReadFile(cfg)
		if err := os.WriteFile(cfg, append(orig, []byte("# edited\n")...), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(cfg, orig, 0o600)
		code, out := run(t, "watch", "--resume", state)
		if code != ExitUsage || !strings.Contains(out, "is not the one the watch began with") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})

	t.Run("another process holds the watch", func(t *testing.T) {
		held, err := lockState(state)
		if err != nil {
			t.Fatal(err)
		}
		defer held.close()
		code, out := run(t, "watch", "--resume", state)
		if code != ExitUsage || !strings.Contains(out, "is following the watch in") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})

	t.Run("a new watch does not overwrite one in progress", func(t *testing.T) {
		code, out := run(t, "run", "-f", cfg, "--version", "v3", "--state", state)
		if code != ExitUsage || !strings.Contains(out, "holds a watch in progress (api v2, ") || !strings.Contains(out, "watch --resume") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})

	if d, r := count(t, filepath.Join(dir, "deploys")), count(t, filepath.Join(dir, "rollbacks")); d != 1 || r != 0 {
		t.Fatalf("after the refusals: %d deploys, %d rollbacks; a refused resume must do nothing", d, r)
	}
	if now, _ := os.ReadFile(state); !bytes.Equal(now, good) {
		t.Fatal("a refused resume changed the state file")
	}

	t.Run("the resume itself goes on without deploying again", func(t *testing.T) {
		code, out := run(t, "watch", "--resume", state, "-o", "json")
		if code != ExitInconclusive || !strings.Contains(out, `"event":"resumed"`) {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if d := count(t, filepath.Join(dir, "deploys")); d != 1 {
			t.Fatalf("%d deploys after the resume", d)
		}
		code, out = run(t, "watch", "--resume", state)
		if code != ExitInconclusive || !strings.Contains(out, "had already ended inconclusive") {
			t.Fatalf("resuming the ended watch: exit %d:\n%s", code, out)
		}
	})
}
