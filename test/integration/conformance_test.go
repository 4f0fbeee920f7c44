package integration

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/metrics"
	"github.com/deploywatch/deploywatch/internal/metrics/embedded"
	"github.com/deploywatch/deploywatch/internal/metrics/prometheus"
	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// TestEmbeddedAgreesWithPrometheus runs the same queries against the
// embedded engine and a real Prometheus scraping the same target every
// second. Once the windows are full they must agree within 1%.
func TestEmbeddedAgreesWithPrometheus(t *testing.T) {
	if _, ok := testenv.PrometheusBinary(); !ok {
		testenv.Missing(t, "prometheus", "Debian package prometheus")
	}
	t.Parallel()
	// The two scrapers cannot scrape at the same instants, so a service
	// with random traffic shows each a slightly different sample of it.
	// This exporter's counters are exact functions of time instead: any
	// disagreement left is the engines'.
	svc := httptest.NewServer(http.HandlerFunc(syntheticExporter(time.Now())))
	t.Cleanup(svc.Close)
	addr := strings.TrimPrefix(svc.URL, "http://")
	prom := testenv.StartPrometheus(t, time.Second, addr)
	emb, err := embedded.New(embedded.Options{Scrape: []embedded.ScrapeConfig{{Job: "api", Targets: []string{addr}, Interval: time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Start()()
	remote, err := prometheus.New(prometheus.Config{URL: prom.URL})
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]watch.Querier{"prometheus": remote, "embedded": emb}
	// The 1m windows and the 30s offset need 90s of samples in both.
	waitFor(t, "90s of samples in both engines", 3*time.Minute, func() bool {
		for _, src := range sources {
			v, err := src.Query(context.Background(), `count_over_time(up{job="api"}[100s])`, time.Now())
			if err != nil || len(v) != 1 || v[0].Value < 90 {
				return false
			}
		}
		return true
	})
	at := time.Now().Add(-3 * time.Second)

	queries := []struct {
		name string
		expr string
		key  func(metrics.Labels) string
	}{
		{"error ratio", `sum(rate(http_requests_total{job="api",status=~"5.."}[1m])) / sum(rate(http_requests_total{job="api"}[1m]))`, nil},
		{"request rate", `sum(rate(http_requests_total{job="api"}[1m]))`, nil},
		{"histogram p99", `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{job="api"}[1m])))`, nil},
		{"buckets by le", `sum by (le) (increase(http_request_duration_seconds_bucket{job="api"}[1m]))`, leKey},
		{"up", `up{job="api"}`, nil},
		{"offset", `sum(increase(http_requests_total{job="api"}[30s] offset 30s))`, nil},
		{"increase since", `sum(increase(http_requests_total{job="api"}[45s]))`, nil},
	}
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			results := map[string]map[string]float64{}
			for name, src := range sources {
				v, err := src.Query(context.Background(), q.expr, at)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				results[name] = map[string]float64{}
				for _, s := range v {
					k := ""
					if q.key != nil {
						k = q.key(s.Labels)
					}
					results[name][k] = s.Value
				}
			}
			p, e := results["prometheus"], results["embedded"]
			if len(p) == 0 || len(p) != len(e) {
				t.Fatalf("prometheus %v, embedded %v", p, e)
			}
			for k, pv := range p {
				ev, ok := e[k]
				if !ok {
					t.Fatalf("embedded lacks %q: %v", k, e)
				}
				if d := relDiff(pv, ev); d > 0.01 {
					t.Errorf("%s %s: prometheus %g, embedded %g (%.2f%% apart)", q.name, k, pv, ev, 100*d)
				}
			}
			t.Logf("%s: prometheus %v embedded %v", q.name, p, e)
		})
	}
}

// syntheticExporter serves 100 req/s with 5% errors and a fixed latency
// distribution, as counters that are linear in time.
func syntheticExporter(start time.Time) func(http.ResponseWriter, *http.Request) {
	buckets := []struct {
		le    string
		share float64
	}{{"0.05", 0.30}, {"0.1", 0.70}, {"0.25", 0.95}, {"0.5", 0.995}, {"1", 1}, {"+Inf", 1}}
	return func(w http.ResponseWriter, r *http.Request) {
		n := 100 * time.Since(start).Seconds()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE http_requests_total counter\n")
		fmt.Fprintf(w, "http_requests_total{status=\"200\"} %g\n", 0.95*n)
		fmt.Fprintf(w, "http_requests_total{status=\"500\"} %g\n", 0.05*n)
		fmt.Fprintf(w, "# TYPE http_request_duration_seconds histogram\n")
		for _, b := range buckets {
			fmt.Fprintf(w, "http_request_duration_seconds_bucket{le=%q} %g\n", b.le, b.share*n)
		}
		fmt.Fprintf(w, "http_request_duration_seconds_sum %g\nhttp_request_duration_seconds_count %g\n", 0.1*n, n)
	}
}

// leKey compares buckets by value: Prometheus 2.42 writes le="1", newer
// parsers normalise to "1.0".
func leKey(l metrics.Labels) string {
	f, err := strconv.ParseFloat(l["le"], 64)
	if err != nil {
		return l["le"]
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func relDiff(a, b float64) float64 {
	if a == b {
		return 0
	}
	return math.Abs(a-b) / math.Max(math.Abs(a), math.Abs(b))
}
