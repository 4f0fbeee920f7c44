package promql

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func query(t *testing.T, e *Engine, expr string, at time.Time) map[string]float64 {
	t.Helper()
	v, err := e.Query(context.Background(), expr, at)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	out := map[string]float64{}
	for _, s := range v {
		out[s.Labels.String()] = s.Value
	}
	return out
}

func one(t *testing.T, e *Engine, expr string, at time.Time) float64 {
	t.Helper()
	r := query(t, e, expr, at)
	if len(r) != 1 {
		t.Fatalf("%s: %d results %v, want one", expr, len(r), r)
	}
	for _, v := range r {
		return v
	}
	return 0
}

func TestCountersResetsAndRate(t *testing.T) {
	s := NewStore(time.Hour.Milliseconds())
	e := NewEngine(s, EngineOptions{})
	lset := labels.FromStrings("__name__", "requests_total", "job", "api")
	// 10/s for 60s, with a restart (counter reset) at 30s.
	for i := 0; i <= 60; i++ {
		v := float64(10 * i)
		if i >= 30 {
			v = float64(10 * (i - 30))
		}
		if err := s.Append(lset, t0.Add(time.Duration(i)*time.Second).UnixMilli(), v); err != nil {
			t.Fatal(err)
		}
	}
	at := t0.Add(60 * time.Second)
	if got := one(t, e, `rate(requests_total[30s])`, at); math.Abs(got-10) > 0.01 {
		t.Errorf("rate across a reset = %g, want 10", got)
	}
	if got := one(t, e, `increase(requests_total[60s])`, at); math.Abs(got-590) > 15 {
		t.Errorf("increase = %g, want about 590", got)
	}
	if got := one(t, e, `requests_total offset 40s`, at); got != 200 {
		t.Errorf("offset 40s = %g, want 200", got)
	}
	if err := s.Append(lset, t0.Add(10*time.Second).UnixMilli(), 1); err != ErrOutOfOrder {
		t.Errorf("an old sample: %v, want ErrOutOfOrder", err)
	}
}

func TestRetentionDropsOldChunks(t *testing.T) {
	s := NewStore(time.Minute.Milliseconds())
	lset := labels.FromStrings("__name__", "g")
	for i := range 3600 {
		_ = s.Append(lset, t0.Add(time.Duration(i)*time.Second).UnixMilli(), float64(i))
	}
	_, samples, bytes := s.Stats()
	if samples > 60+samplesPerChunk {
		t.Errorf("%d samples kept for a 1m retention at 1/s", samples)
	}
	if perSample := float64(bytes) / float64(samples); perSample > 3 {
		t.Errorf("%.2f bytes per sample: not compressed", perSample)
	}
	s.Compact(t0.Add(2 * time.Hour).UnixMilli())
	if n, _, _ := s.Stats(); n != 0 {
		t.Errorf("%d series kept after they left the retention", n)
	}
}

const exposition = `# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{method="GET",status="200"} %d
http_requests_total{method="GET",status="500"} %d
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1"} %d
http_request_duration_seconds_bucket{le="0.5"} %d
http_request_duration_seconds_bucket{le="+Inf"} %d
http_request_duration_seconds_sum 1
http_request_duration_seconds_count %d
# TYPE build_info gauge
build_info{job="exporter-job",version="1"} 1
`

func TestIngestStalenessAndTargetLabels(t *testing.T) {
	s := NewStore(time.Hour.Milliseconds())
	e := NewEngine(s, EngineOptions{})
	tg := Target{Job: "api", Instance: "127.0.0.1:8000"}
	for i := 0; i <= 20; i++ {
		body := fmt.Sprintf(exposition, 100*i, i, 90*i, 99*i, 101*i, 101*i)
		if _, err := s.Ingest(tg, []byte(body), "text/plain; version=0.0.4", t0.Add(time.Duration(i)*time.Second), time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	at := t0.Add(20 * time.Second)
	if got := one(t, e, `sum(rate(http_requests_total{job="api",status=~"5.."}[10s])) / sum(rate(http_requests_total{job="api"}[10s]))`, at); math.Abs(got-1.0/101) > 1e-9 {
		t.Errorf("error ratio = %g", got)
	}
	if got := one(t, e, `histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{job="api"}[10s])))`, at); math.Abs(got-0.1*50.5/90) > 1e-6 {
		t.Errorf("p50 = %g", got)
	}
	if got := one(t, e, `up{job="api",instance="127.0.0.1:8000"}`, at); got != 1 {
		t.Errorf("up = %g", got)
	}
	if r := query(t, e, `build_info{exported_job="exporter-job",job="api"}`, at); len(r) != 1 {
		t.Errorf("a clashing job label must become exported_job: %v", r)
	}
	// The 500 series disappears from the next scrape: it must go stale at
	// once, not linger for the 5-minute lookback.
	body := strings.Replace(fmt.Sprintf(exposition, 2100, 21, 1, 1, 1, 1), `http_requests_total{method="GET",status="500"} 21`+"\n", "", 1)
	if _, err := s.Ingest(tg, []byte(body), "text/plain", t0.Add(21*time.Second), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if r := query(t, e, `http_requests_total{status="500"}`, t0.Add(22*time.Second)); len(r) != 0 {
		t.Errorf("a vanished series is still visible: %v", r)
	}
	// A failed scrape: up is 0 and everything goes stale.
	s.IngestFailure(tg, t0.Add(22*time.Second), time.Second)
	at = t0.Add(23 * time.Second)
	if got := one(t, e, `up{job="api"}`, at); got != 0 {
		t.Errorf("up after a failed scrape = %g", got)
	}
	if r := query(t, e, `http_requests_total`, at); len(r) != 0 {
		t.Errorf("series of a down target are still visible: %v", r)
	}
}

func TestIngestOpenMetrics(t *testing.T) {
	s := NewStore(time.Hour.Milliseconds())
	e := NewEngine(s, EngineOptions{})
	om := "# TYPE jobs counter\njobs_total{kind=\"a\"} 3\njobs_created{kind=\"a\"} 1700000000\n# EOF\n"
	n, err := s.Ingest(Target{Job: "w", Instance: "x"}, []byte(om), "application/openmetrics-text; version=1.0.0; charset=utf-8", t0, 0)
	if err != nil || n != 1 {
		t.Fatalf("n=%d err=%v: want the counter and no _created series", n, err)
	}
	if got := one(t, e, `jobs_total{kind="a"}`, t0); got != 3 {
		t.Errorf("jobs_total = %g", got)
	}
	if _, err := s.Ingest(Target{Job: "w", Instance: "x"}, []byte("not { a metric"), "text/plain", t0.Add(time.Second), 0); err == nil {
		t.Error("garbage was ingested")
	}
}

func TestBadQueriesAndRangeQueries(t *testing.T) {
	s := NewStore(time.Hour.Milliseconds())
	e := NewEngine(s, EngineOptions{})
	for i := range 10 {
		_ = s.Append(labels.FromStrings("__name__", "up", "job", "api"), t0.Add(time.Duration(i)*time.Second).UnixMilli(), 1)
	}
	if _, err := e.Query(context.Background(), `sum(`, t0); err == nil || !strings.Contains(err.Error(), "rejected") {
		t.Errorf("err = %v", err)
	}
	if _, err := e.Query(context.Background(), `up[1m]`, t0); err == nil {
		t.Error("a range vector was accepted as an instant answer")
	}
	m, err := e.QueryRange(context.Background(), `count(up)`, t0, t0.Add(9*time.Second), time.Second)
	if err != nil || len(m) != 1 || len(m[0].Points) != 10 {
		t.Fatalf("range: %v %v", m, err)
	}
}

func TestConcurrentAppendAndQuery(t *testing.T) {
	s := NewStore(time.Hour.Milliseconds())
	e := NewEngine(s, EngineOptions{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 2000 {
			_ = s.Append(labels.FromStrings("__name__", "c", "i", fmt.Sprint(i%10)), t0.Add(time.Duration(i)*time.Millisecond*10).UnixMilli(), float64(i))
		}
	})
	for range 50 {
		if _, err := e.Query(context.Background(), `sum(rate(c[1m]))`, t0.Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}
