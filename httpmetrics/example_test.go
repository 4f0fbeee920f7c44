package httpmetrics_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deploywatch/deploywatch/httpmetrics"
)

// Wrap the ServeMux, not each handler, so the route label is the pattern
// that matched.
func Example() {
	reg := prometheus.NewRegistry()
	m, err := httpmetrics.New(reg)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.PathValue("id")) })
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	handler := m.Middleware(mux)

	for _, path := range []string{"/items/1", "/items/2", "/nope"} {
		handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "http_requests_total") {
			fmt.Println(line)
		}
	}
	// Output:
	// http_requests_total{method="GET",route="/items/{id}",status="200"} 2
	// http_requests_total{method="GET",route="unmatched",status="404"} 1
}
