package datadog

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/metrics"
	"github.com/deploywatch/deploywatch/internal/testenv"
)

// FuzzDecode: whatever Datadog (or something in its place) answers, the
// decoder gives series or an error, never a panic; a count is never
// negative unless a point was. Seeds: the recorded answers in testdata.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, body []byte, count bool) {
		var vec metrics.Vector
		var err error
		testenv.Within(t, 5*time.Second, func() { vec, err = decode(body, count) })
		if err != nil {
			return
		}
		for _, s := range vec {
			if s.Labels == nil {
				t.Fatal("a series without labels")
			}
			_ = math.IsNaN(s.Value)
		}
	})
}

// FuzzSplitRange: a query and its bracketed range split apart, or an
// error; a range read is positive.
func FuzzSplitRange(f *testing.F) {
	for _, s := range []string{"sum:a{b:c}.as_count()[37s]", "p99:x{*}[1h0m0s]", "x[]", "[5m]", "a[b[c]]", "x[-1s]", "x[9999999999h]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		q, rng, err := metrics.SplitRange(expr)
		if err == nil && (rng <= 0 || q == "") {
			t.Fatalf("%q split into %q and %s", expr, q, rng)
		}
	})
}
