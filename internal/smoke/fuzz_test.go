package smoke

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/deploywatch/deploywatch/internal/testenv"
)

// FuzzLoad: no suite file, however broken, panics or hangs the loader,
// and every refusal names the file. Seeds: testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var err error
		testenv.Within(t, 5*time.Second, func() { _, err = Load(data, "smoke.yaml") })
		if err != nil && !strings.Contains(err.Error(), "smoke.yaml") {
			t.Fatalf("the error does not name the file: %v", err)
		}
	})
}

// FuzzJQ: any jq expression, as an assertion and as a capture, over any
// answer, ends within its budget (a loop or an endless build is stopped)
// and gives a result, never a panic. Seeds: testdata/fuzz/FuzzJQ.
func FuzzJQ(f *testing.F) {
	var body atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body.Load().([]byte))
	}))
	defer srv.Close()
	f.Fuzz(func(t *testing.T, expr string, answer []byte) {
		doc := map[string]any{"checks": []map[string]any{{
			"name": "fuzz", "path": "/", "expect": map[string]any{"jq": []string{expr}}, "capture": map[string]string{"v": expr},
		}}}
		src, err := yaml.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Load(src, "smoke.yaml")
		if err != nil {
			return // an expression jq refuses is refused at load, by name
		}
		body.Store(answer)
		var rep Report
		testenv.Within(t, 10*time.Second, func() {
			rep, err = s.Run(context.Background(), Options{BaseURL: srv.URL})
		})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if len(rep.Results) != 1 {
			t.Fatalf("%d results for one check", len(rep.Results))
		}
	})
}
