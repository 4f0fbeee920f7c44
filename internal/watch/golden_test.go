package watch

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/deploywatch/deploywatch/internal/golden"
)

// TestReportGolden pins the report JSON, a contract users and scripts
// read, and the event stream of --output json, for a release caught and
// rolled back. The fake clock makes every time in them reproducible.
func TestReportGolden(t *testing.T) {
	rep, _, events := runScenario(t, scenario{before: good, after: profile{rps: 50, errRatio: 0.05, latency: 1}})
	if rep.Verdict != Failed {
		t.Fatalf("verdict %s: %s", rep.Verdict, rep.Reason)
	}
	data, err := rep.Encode()
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "failed.report.golden.json", data)
	var lines bytes.Buffer
	enc := json.NewEncoder(&lines)
	enc.SetEscapeHTML(false)
	for _, e := range events {
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
	}
	golden.Check(t, "failed.events.golden.jsonl", lines.Bytes())
}
