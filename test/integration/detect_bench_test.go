package integration

import (
	"cmp"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/cli"
	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/testsvc"
)

// BenchmarkDetection measures the time from the deploy command to the
// rollback decision for the bad releases of the issue, against a real
// Prometheus scraping every 1s, with the config (warm-up 5s,
// interval 2s, the default sequential judge looking every scrape; a longer
// monitor where the evidence takes longer). It reports detect-s (seconds) and
// rollback-s (seconds until the rollback hook finished). Run with
//
//	go test ./test/integration -run '^$' -bench Detection -benchtime 3x
func BenchmarkDetection(b *testing.B) {
	if _, ok := testenv.PrometheusBinary(); !ok {
		testenv.Missing(b, "prometheus", "Debian package prometheus")
	}
	cases := []struct {
		name    string
		after   testsvc.Profile
		rps     float64
		monitor string
	}{
		{name: "errors=30%/rps=50", after: testsvc.Profile{Version: "v2", ErrorRatio: 0.30, Latency: 1}},
		{name: "errors=5%/rps=50", after: testsvc.Profile{Version: "v2", ErrorRatio: 0.05, Latency: 1}},
		{name: "errors=2%/rps=50", after: testsvc.Profile{Version: "v2", ErrorRatio: 0.02, Latency: 1}, monitor: "90s"},
		{name: "p99=4x/rps=50", after: testsvc.Profile{Version: "v2", ErrorRatio: 0.001, Latency: 4}},
		{name: "p99=3x/rps=50", after: testsvc.Profile{Version: "v2", ErrorRatio: 0.001, Latency: 3}},
		{name: "traffic-stops/rps=50", after: testsvc.Profile{Version: "v2", Silent: true}},
		{name: "errors=3%/rps=5", after: testsvc.Profile{Version: "v2", ErrorRatio: 0.03, Latency: 1}, rps: 5, monitor: "150s"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var detect, rollback time.Duration
			detected := 0
			for range b.N {
				b.StopTimer()
				e := newBenchEnv(b, healthy, cmp.Or(c.rps, 50), 20*time.Second)
				e.monitor = c.monitor
				e.svc.Stage(c.after)
				b.StartTimer()
				r := e.run(b, "")
				b.StopTimer()
				e.close()
				switch r.code {
				case cli.ExitStable:
					continue // missed
				case cli.ExitFailed:
				default:
					b.Fatalf("exit %d\n%s", r.code, r.out)
				}
				detected++
				detect += r.detect
				if rb := r.report.Rollback; rb != nil && rb.At != nil {
					if d, err := time.ParseDuration(rb.Duration); err == nil {
						rollback += r.detect + d
					}
				}
			}
			if detected > 0 {
				b.ReportMetric(detect.Seconds()/float64(detected), "detect-s")
				b.ReportMetric(rollback.Seconds()/float64(detected), "rollback-s")
			}
			b.ReportMetric(float64(b.N-detected)/float64(b.N), "missed")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// newBenchEnv is newEnv for a benchmark iteration, closed explicitly so
// that iterations do not pile up servers.
func newBenchEnv(b *testing.B, initial testsvc.Profile, rps float64, history time.Duration) *benchEnv {
	svc, err := testsvc.Start("127.0.0.1:0", initial, rps)
	if err != nil {
		b.Fatal(err)
	}
	prom := testenv.StartPrometheus(b, time.Second, svc.Addr)
	prom.WaitForHistory(b, history)
	return &benchEnv{env: &env{svc: svc, prom: prom, dir: b.TempDir()}}
}

type benchEnv struct{ *env }

func (e *benchEnv) close() {
	e.prom.Stop()
	e.svc.Close()
}
