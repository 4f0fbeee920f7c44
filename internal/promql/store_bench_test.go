package promql

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkStoreHour ingests an hour of 50 targets x 500 series scraped
// every second (90 million samples, in simulated time) through the real
// exposition parser, then reports the memory it holds:
//
//	go test ./internal/promql -run '^$' -bench StoreHour -benchtime 1x
//
// bytes/sample is the compressed chunk bytes over the samples held;
// heap-MiB is the live heap after a GC; rss-MiB is the process's resident
// set; ingest-samples/s is the parse-and-append throughput.
func BenchmarkStoreHour(b *testing.B) {
	const (
		targets = 50
		series  = 500
		seconds = 3600
	)
	for range b.N {
		store := NewStore(time.Hour.Milliseconds())
		counters := make([][]float64, targets)
		for i := range counters {
			counters[i] = make([]float64, series)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		var buf []byte
		names := make([]string, series)
		for j := range names {
			names[j] = fmt.Sprintf("app_requests_total{route=\"/r%d\",code=\"%d\"} ", j/5, 200+100*(j%5))
		}
		start := time.Now()
		t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
		for s := range seconds {
			ts := t0.Add(time.Duration(s) * time.Second)
			for tg := range targets {
				buf = append(buf[:0], "# TYPE app_requests_total counter\n"...)
				for j := range series {
					counters[tg][j] += float64(rng.IntN(50))
					buf = append(buf, names[j]...)
					buf = strconv.AppendFloat(buf, counters[tg][j], 'g', -1, 64)
					buf = append(buf, '\n')
				}
				if _, err := store.Ingest(Target{Job: "api", Instance: "10.0.0." + strconv.Itoa(tg) + ":8000"}, buf, "text/plain", ts, time.Millisecond); err != nil {
					b.Fatal(err)
				}
			}
		}
		took := time.Since(start)
		nSeries, samples, chunkBytes := store.Stats()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(nSeries), "series")
		b.ReportMetric(float64(samples)/1e6, "Msamples")
		b.ReportMetric(float64(chunkBytes)/float64(samples), "bytes/sample")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(rssMiB(), "rss-MiB")
		b.ReportMetric(float64(samples)/took.Seconds(), "ingest-samples/s")
		// A check's query over the whole hour still answers.
		e := NewEngine(store, EngineOptions{})
		qs := time.Now()
		v, err := e.Query(context.Background(), `sum(rate(app_requests_total{code="500"}[5m]))`, t0.Add(seconds*time.Second))
		if err != nil || len(v) != 1 {
			b.Fatalf("query: %v %v", v, err)
		}
		b.ReportMetric(float64(time.Since(qs).Milliseconds()), "query-ms")
	}
}

func rssMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
