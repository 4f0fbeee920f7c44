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

// TestDemoEndToEnd runs `deploywatch demo --fast` in process and checks
// both outcomes from the reports, as a script would.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes about 20 seconds")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	code := Run(ctx, []string{"demo", "--fast", "--report-dir", dir}, &out, &out)
	if code != 0 {
		t.Fatalf("demo exit %d\n%s", code, out.String())
	}
	read := func(name string) *watch.Report {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var r watch.Report
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		return &r
	}
	good, bad := read("1-v1.1.0.json"), read("2-v1.2.0.json")
	if good.Verdict != watch.Stable || (good.Rollback != nil && good.Rollback.Performed) {
		t.Errorf("good release: %s %+v", good.Verdict, good.Rollback)
	}
	if bad.Verdict != watch.Failed || bad.Rollback == nil || !bad.Rollback.Performed || !bad.Rollback.OK || bad.Rollback.Revision != "v1.1.0" {
		t.Errorf("bad release: %s %+v", bad.Verdict, bad.Rollback)
	}
	if good.Settings.BaselineHistory != "6s" {
		t.Errorf("the first deploy's baseline covers %s, want the 6s it waited for", good.Settings.BaselineHistory)
	}
	for _, c := range good.Checks {
		if c.Baseline == nil {
			t.Errorf("good release: check %s has no baseline", c.Name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "deploywatch.yaml")); err != nil {
		t.Error("the demo's config was not written next to the reports")
	}
	for _, want := range []string{"was caught and rolled back to v1.1.0", "./examples/smoke-tests.sh http://127.0.0.1:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
