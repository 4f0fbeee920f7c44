package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/deploywatch/deploywatch/internal/golden"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// TestPrinterGolden pins what people and programs read of a watch: the
// engine's event stream of a release caught and rolled back (pinned by
// the engine's own golden test) printed as text lines for CI, and as
// --output json.
func TestPrinterGolden(t *testing.T) {
	f, err := os.Open("../watch/testdata/failed.events.golden.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []watch.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e watch.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: %v", sc.Bytes(), err)
		}
		events = append(events, e)
	}
	if len(events) < 10 {
		t.Fatalf("%d events", len(events))
	}
	noEnv := func(string) (string, bool) { return "", false }
	for _, output := range []string{"text", "json"} {
		var out bytes.Buffer
		p := newPrinter(&out, output, noEnv)
		for _, e := range events {
			p.Event(e)
		}
		p.close()
		golden.Check(t, "failed."+output+".golden", out.Bytes())
	}
}
