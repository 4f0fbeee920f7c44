package github

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/golden"
	"github.com/deploywatch/deploywatch/internal/notify/notifytest"
)

func TestSummaryOutputsAndAnnotations(t *testing.T) {
	dir := t.TempDir()
	summary, output := filepath.Join(dir, "summary.md"), filepath.Join(dir, "output")
	env := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summary, "GITHUB_OUTPUT": output,
		"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/api", "GITHUB_RUN_ID": "42"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var stdout bytes.Buffer
	a := FromEnv(lookup, &stdout)
	if a == nil || RunURL(lookup) != "https://github.com/acme/api/actions/runs/42" {
		t.Fatal("not detected")
	}
	if err := a.Send(context.Background(), notifytest.Message(event.Verdict)); err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(output)
	for _, want := range []string{"verdict=failed\n", "rolled_back=true\n", "error_rate_exceeded=true\n", "unhealthy_pods=false\n", "detected_at=2026-11-25T12:00:09Z\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("outputs lack %q:\n%s", want, out)
		}
	}
	if !strings.HasPrefix(stdout.String(), "::error title=Deploy of api v2 to staging failed and was rolled back to v1::error_rate%3A") &&
		!strings.HasPrefix(stdout.String(), "::error title=Deploy of api v2 to staging failed and was rolled back to v1::error_rate: 5.59%25") {
		t.Errorf("annotation %q", stdout.String())
	}
	sum, _ := os.ReadFile(summary)
	golden.Check(t, "summary.golden.md", sum)
	if FromEnv(func(string) (string, bool) { return "", false }, nil) != nil {
		t.Error("detected outside GitHub Actions")
	}
}
