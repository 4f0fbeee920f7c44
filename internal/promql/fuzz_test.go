package promql

import (
	"context"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/testenv"
)

// FuzzIngest: no exposition, in the Prometheus text format or in
// OpenMetrics, panics or hangs the scrape parser and the store, and what
// was stored can be queried. Seeds: testdata/fuzz/FuzzIngest.
func FuzzIngest(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte, openMetrics bool) {
		ct := "text/plain; version=0.0.4"
		if openMetrics {
			ct = "application/openmetrics-text; version=1.0.0"
		}
		s := NewStore(time.Hour.Milliseconds())
		e := NewEngine(s, EngineOptions{Timeout: 5 * time.Second})
		at := time.Unix(1_764_543_600, 0)
		target := Target{Job: "api", Instance: "127.0.0.1:8000"}
		var err error
		testenv.Within(t, 10*time.Second, func() {
			// Twice: the second scrape marks what vanished as stale.
			_, _ = s.Ingest(target, body, ct, at, time.Millisecond)
			_, _ = s.Ingest(target, body[:len(body)/2], ct, at.Add(time.Second), time.Millisecond)
			_, err = e.Query(context.Background(), `count({__name__=~".+"})`, at.Add(time.Second))
		})
		if err != nil {
			t.Fatalf("querying what was stored: %v", err)
		}
	})
}
