package grafana

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/golden"
	"github.com/deploywatch/deploywatch/internal/notify/notifytest"
)

// fakeGrafana implements POST /api/annotations and PATCH
// /api/annotations/:id as documented: bearer auth, text required, times in
// epoch milliseconds, answers {"message":"Annotation added","id":N}.
type fakeGrafana struct {
	mu    sync.Mutex
	store map[int64]map[string]any
	next  int64
	calls []string
}

func (f *fakeGrafana) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer glsa_token" {
		http.Error(w, `{"message":"Unauthorized"}`, 401)
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, `{"message":"bad request data"}`, 400)
		return
	}
	for _, k := range []string{"time", "timeEnd"} {
		if v, ok := body[k].(float64); ok && (v < 1e12 || v > 1e14) {
			http.Error(w, fmt.Sprintf(`{"message":"%s must be epoch milliseconds"}`, k), 400)
			return
		}
	}
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/annotations":
		if body["text"] == nil || body["text"] == "" {
			http.Error(w, `{"message":"text is required"}`, 400)
			return
		}
		f.next++
		f.store[f.next] = body
		fmt.Fprintf(w, `{"message":"Annotation added","id":%d}`, f.next)
	case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/api/annotations/"):
		var id int64
		fmt.Sscan(strings.TrimPrefix(r.URL.Path, "/api/annotations/"), &id)
		a, ok := f.store[id]
		if !ok {
			http.Error(w, `{"message":"Annotation not found"}`, 404)
			return
		}
		for k, v := range body {
			a[k] = v
		}
		w.Write([]byte(`{"message":"Annotation patched"}`))
	default:
		http.NotFound(w, r)
	}
}

func TestRegionOpenedAndClosed(t *testing.T) {
	f := &fakeGrafana{store: map[int64]map[string]any{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	g := New(Options{URL: srv.URL, Token: "glsa_token", DashboardUID: "api-overview"})
	start, verdict := notifytest.Message(event.Started), notifytest.Message(event.Verdict)
	if err := g.Send(context.Background(), start); err != nil {
		t.Fatal(err)
	}
	if err := g.Send(context.Background(), verdict); err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.calls, ",") != "POST /api/annotations,PATCH /api/annotations/1" {
		t.Fatalf("calls %v", f.calls)
	}
	a := f.store[1]
	if a["dashboardUID"] != "api-overview" || a["time"].(float64) != float64(notifytest.Started.UnixMilli()) ||
		a["timeEnd"].(float64) != float64(notifytest.Started.Add(9*time.Second).UnixMilli()) {
		t.Errorf("region %v", a)
	}
	if !strings.Contains(a["text"].(string), "rolled back to v1") {
		t.Errorf("text %q lacks the outcome", a["text"])
	}
	golden.Check(t, "grafana-region.golden.json", a)
}

func TestVerdictWithoutStartPostsTheWholeRegion(t *testing.T) {
	f := &fakeGrafana{store: map[int64]map[string]any{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	g := New(Options{URL: srv.URL, Token: "glsa_token"})
	if err := g.Send(context.Background(), notifytest.Message(event.Verdict)); err != nil {
		t.Fatal(err)
	}
	if a := f.store[1]; a == nil || a["timeEnd"] == nil {
		t.Fatalf("store %v", f.store)
	}
}

func TestBadTokenIsAnErrorWithoutTheToken(t *testing.T) {
	f := &fakeGrafana{store: map[int64]map[string]any{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	err := New(Options{URL: srv.URL, Token: "wrong-secret"}).Send(context.Background(), notifytest.Message(event.Started))
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("err = %v", err)
	}
}
