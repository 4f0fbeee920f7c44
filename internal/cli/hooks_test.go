package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionsReachHooksAsDataOnly: a version (or service name) that
// looks like shell code reaches every hook as data, in the environment,
// never as part of a command line: nothing it says runs.
func TestVersionsReachHooksAsDataOnly(t *testing.T) {
	for _, version := range []string{
		"v1; touch MARKER",
		"$(touch MARKER)",
		"`touch MARKER`",
		"v1 && touch MARKER",
		"v1' ; touch MARKER ; echo '",
		"v1\"; touch MARKER; echo \"",
		"v1\ntouch MARKER",
		"v1 | touch MARKER",
		"${IFS}touch${IFS}MARKER",
	} {
		t.Run(version, func(t *testing.T) {
			// Not t.TempDir: its path carries the test's name, this very code.
			dir, err := os.MkdirTemp("", "dw-hooks-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			marker := filepath.Join(dir, "MARKER")
			version := strings.ReplaceAll(version, "MARKER", marker)
			value := filepath.Join(dir, "value")
			if err := os.WriteFile(value, []byte("1"), 0o600); err != nil {
				t.Fatal(err)
			}
			script := filepath.Join(dir, "value.sh")
			_ = os.WriteFile(script, []byte("#!/bin/sh\ncat "+value+"\n"), 0o755)
			// Each hook records the version it got; the deploy makes the
			// check fail, so the rollback and its hooks run too.
			rec := func(name string) string {
				return fmt.Sprintf(`printf '%%s' "$DEPLOYWATCH_VERSION" > %s/%s.version; printf '%%s' "$DEPLOYWATCH_PREVIOUS_VERSION" > %s/%s.previous`, dir, name, dir, name)
			}
			cfg := filepath.Join(dir, "deploywatch.yaml")
			err = os.WriteFile(cfg, []byte(fmt.Sprintf(`service: api
target:
  command:
    deploy: %q
    rollback: %q
    status: %q
    current: %q
metrics:
  command: {run: %s}
checks:
  - {name: depth, query: depth, fail: "> 100"}
phases: {warmup: 0s, verify: 1s, monitor: 3s, interval: 200ms}
`, rec("deploy")+"; echo 500 > "+value, rec("rollback"), rec("status"), `echo 'v0 $(touch `+marker+`)'`, script)), 0o600)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			code := Run(context.Background(), []string{"run", "-f", cfg, "--version", version}, &out, &out,
				WithEnv(func(string) (string, bool) { return "", false }))
			if _, err := os.Stat(marker); err == nil {
				t.Fatalf("the version ran as shell code (exit %d)\n%s", code, out.String())
			}
			if code == ExitUsage {
				if !strings.Contains(out.String(), "--version") {
					t.Fatalf("refused without naming --version:\n%s", out.String())
				}
				t.Logf("refused: %s", out.String())
				return // refusing such a version is safe too
			}
			if code != ExitFailed {
				t.Fatalf("exit %d, want 1\n%s", code, out.String())
			}
			for _, hook := range []string{"deploy", "status", "rollback"} {
				got, err := os.ReadFile(filepath.Join(dir, hook+".version"))
				if err != nil {
					t.Fatalf("the %s hook did not run: %v\n%s", hook, err, out.String())
				}
				if string(got) != version {
					t.Errorf("the %s hook got DEPLOYWATCH_VERSION %q, want %q", hook, got, version)
				}
			}
			if prev, _ := os.ReadFile(filepath.Join(dir, "rollback.previous")); !strings.HasPrefix(string(prev), "v0 ") {
				t.Errorf("the rollback hook got DEPLOYWATCH_PREVIOUS_VERSION %q, want the current hook's output as data", prev)
			}
		})
	}
}
