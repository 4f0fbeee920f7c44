package dashboard_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/dashboard/fixture"
	"github.com/deploywatch/deploywatch/internal/server"
)

// BenchmarkPages renders the pages on the server over a store of 100,000
// deploys (the time per op is the render time; the targets are 100ms for
// the list and a service, 150ms for a deploy of five checks over an
// hour):
//
//	go test ./internal/dashboard -run '^$' -bench Pages -benchtime 50x
func BenchmarkPages(b *testing.B) {
	st, oneHour := fixture.Big(b)
	cfg, err := config.LoadServe([]byte("store: {sqlite: unused.db}\napi: {open_read: true}\n"), "serve.yaml")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(server.Options{Config: cfg, Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	for _, bc := range []struct{ name, path string }{
		{"deploys", "/"},
		{"deploys_filtered", "/?service=svc07&verdict=failed"},
		{"deploys_page_100", "/?service=svc03&environment=staging"},
		{"service_30d", "/services/svc07"},
		{"service_90d", "/services/svc07?window=90d"},
		{"deploy_1h_5_checks", "/deploys/" + oneHour},
		{"deploy_live_part", "/deploys/" + oneHour + "?fragment=live"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, bc.path, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("GET %s: %d %s", bc.path, rec.Code, rec.Body)
				}
			}
		})
	}
}
