package httpmetrics

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newMux(t *testing.T, opts ...Option) (*prometheus.Registry, http.Handler) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("item")) })
	mux.HandleFunc("POST /items", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusServiceUnavailable) })
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	mux.HandleFunc("/hints", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusAccepted)
	})
	return reg, m.Middleware(mux)
}

func serve(h http.Handler, method, path string) {
	rec := httptest.NewRecorder()
	func() {
		defer func() { _ = recover() }()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	}()
}

func TestRoutesAreThePatternNotThePath(t *testing.T) {
	reg, h := newMux(t)
	for _, id := range []string{"1", "2", "3", "a-very-long-id"} {
		serve(h, "GET", "/items/"+id)
	}
	serve(h, "POST", "/items")
	serve(h, "GET", "/fail")
	serve(h, "GET", "/empty")
	serve(h, "GET", "/no/such/path/1")
	serve(h, "GET", "/no/such/path/2")
	serve(h, "GET", "/panic")
	serve(h, "GET", "/hints")
	serve(h, "BREW", "/items/1")

	want := `
# HELP http_requests_total HTTP requests served, by method, route and status code.
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/empty",status="200"} 1
http_requests_total{method="GET",route="/fail",status="503"} 1
http_requests_total{method="GET",route="/hints",status="202"} 1
http_requests_total{method="GET",route="/items/{id}",status="200"} 4
http_requests_total{method="GET",route="/panic",status="500"} 1
http_requests_total{method="GET",route="unmatched",status="404"} 2
http_requests_total{method="OTHER",route="unmatched",status="405"} 1
http_requests_total{method="POST",route="/items",status="201"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "http_requests_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "http_request_duration_seconds"); n != 8 {
		t.Errorf("%d duration series, want one per method and route (8)", n)
	}
	inFlight := `
# HELP http_requests_in_flight HTTP requests being served.
# TYPE http_requests_in_flight gauge
http_requests_in_flight 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(inFlight), "http_requests_in_flight"); err != nil {
		t.Errorf("in flight after all requests ended: %v", err)
	}
}

func TestStatusLabelAndNamespace(t *testing.T) {
	reg, h := newMux(t, WithStatusLabel("code"), WithNamespace("shop"))
	serve(h, "GET", "/items/7")
	want := `
# HELP shop_http_requests_total HTTP requests served, by method, route and status code.
# TYPE shop_http_requests_total counter
shop_http_requests_total{code="200",method="GET",route="/items/{id}"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shop_http_requests_total"); err != nil {
		t.Fatal(err)
	}
}

func TestBucketsResolveTheSeedsLines(t *testing.T) {
	has := map[float64]bool{}
	for _, b := range DefaultBuckets {
		has[b] = true
	}
	for _, line := range []float64{0.4, 0.5, 0.6, 1} {
		if !has[line] {
			t.Errorf("no bucket edge at %gs", line)
		}
	}
}

func TestHijackAndFlushPassThrough(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, _ := New(reg)
	srv := httptest.NewServer(m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/flush" {
			w.(http.Flusher).Flush()
			return
		}
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\n\r\n")
		_ = buf.Flush()
		conn.Close()
	})))
	defer srv.Close()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.Contains(line, "101") {
		t.Fatalf("hijack through the middleware failed: %q", line)
	}
	resp, err := http.Get(srv.URL + "/flush")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("flush: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestNativeHistogramsOption(t *testing.T) {
	reg, h := newMux(t, WithNativeHistograms(1.1))
	serve(h, "GET", "/items/1")
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "http_request_duration_seconds" {
			hist := mf.GetMetric()[0].GetHistogram()
			if hist.GetSchema() == 0 && len(hist.GetPositiveSpan()) == 0 && hist.GetZeroThreshold() == 0 {
				t.Fatal("no native histogram recorded")
			}
			if len(hist.GetBucket()) != len(DefaultBuckets) {
				t.Errorf("classic buckets dropped: %d", len(hist.GetBucket()))
			}
			return
		}
	}
	t.Fatal("no duration histogram")
}

func TestDoubleRegistrationIsAnError(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(reg); err == nil {
		t.Fatal("registering twice succeeded")
	}
}

func BenchmarkMiddleware(b *testing.B) {
	reg := prometheus.NewRegistry()
	m, _ := New(reg)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	wrapped := m.Middleware(mux)
	req := httptest.NewRequest("GET", "/items/42", nil)
	b.Run("bare-mux", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			mux.ServeHTTP(discard{}, req)
		}
	})
	b.Run("with-middleware", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			wrapped.ServeHTTP(discard{}, req)
		}
	})
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
