package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Chromium returns the headless browser the page tests drive:
// $DEPLOYWATCH_CHROMIUM, else chromium on the PATH (Debian's package).
func Chromium() (string, bool) {
	if p := os.Getenv("DEPLOYWATCH_CHROMIUM"); p != "" {
		return p, true
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// Axe returns axe-core's script (axe.min.js), which the page tests run
// in the page: $DEPLOYWATCH_AXE (scripts/tools.sh axe fetches it).
func Axe() (string, bool) {
	p := os.Getenv("DEPLOYWATCH_AXE")
	if p == "" {
		return "", false
	}
	_, err := os.Stat(p)
	return p, err == nil
}

// ArtifactDir is where a test keeps what people look at after it
// (screenshots): $DEPLOYWATCH_ARTIFACTS/name, else a folder under the
// system's temporary directory that outlives the test.
func ArtifactDir(tb testing.TB, name string) string {
	tb.Helper()
	root := os.Getenv("DEPLOYWATCH_ARTIFACTS")
	if root == "" {
		root = filepath.Join(os.TempDir(), "deploywatch-artifacts")
	}
	dir, err := filepath.Abs(filepath.Join(root, name))
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}
