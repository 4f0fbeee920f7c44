package traffic_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/smoke"
	"github.com/deploywatch/deploywatch/internal/traffic"
)

func replayer(t *testing.T, base, suite string) *smoke.Replayer {
	t.Helper()
	s, err := smoke.Load([]byte(suite), "smoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Replayer(smoke.Options{BaseURL: base, Env: func(k string) (string, bool) {
		return map[string]string{"TOKEN": "s3cret"}[k], k == "TOKEN"
	}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const suite = `env: [TOKEN]
headers: {Authorization: "Bearer ${TOKEN}"}
checks:
  - name: login
    method: POST
    path: /login
    capture: {session: .id}
  - name: profile
    path: /profile/${session}
  - name: home
    path: /
  - name: api
    path: /api
`

// TestGeneratorSendsMarkedRequestsWithinItsBound: only standalone checks
// are replayed (not one that needs a captured value), every request
// carries the marking header and the suite's headers, and the generator
// stops at its bound.
func TestGeneratorSendsMarkedRequestsWithinItsBound(t *testing.T) {
	var mu sync.Mutex
	paths := map[string]int{}
	done := make(chan struct{})
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(traffic.DefaultHeader) != "v2" || r.Header.Get("Authorization") != "Bearer s3cret" {
			t.Errorf("request without the marks: %v", r.Header)
		}
		mu.Lock()
		paths[r.URL.Path]++
		mu.Unlock()
		if r.URL.Path == "/api" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		if n.Add(1) == 20 {
			close(done)
		}
		if n.Load() > 20 {
			t.Errorf("request %d: more than the bound of 20", n.Load())
		}
	}))
	defer srv.Close()
	p := replayer(t, srv.URL, suite)
	if p.Len() != 3 {
		t.Fatalf("%d standalone checks, want 3 (login, home, api)", p.Len())
	}
	g := traffic.New(p, traffic.Options{Rate: 200, Max: 20})
	g.Start("v2")
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("20 requests did not arrive within 30s")
	}
	waitUntil(t, func() bool { return g.Stats().Sent == 20 })
	st := g.Stop()
	if st.Sent != 20 || st.Failed != 0 || st.ServerErrors < 6 || st.ServerErrors > 7 {
		t.Errorf("stats %+v: want 20 sent, a third of them 5xx", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if paths["/profile/"] != 0 || paths["/login"] == 0 || paths["/"] == 0 {
		t.Errorf("paths %v", paths)
	}
}

// TestGeneratorNeverPilesUp: a service that stalls gets at most the
// concurrency bound of requests in flight; the other ticks are skipped,
// and Stop returns once the requests in flight end.
func TestGeneratorNeverPilesUp(t *testing.T) {
	var inFlight, most atomic.Int64
	release := make(chan struct{})
	arrived := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if now <= m || most.CompareAndSwap(m, now) {
				break
			}
		}
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	g := traffic.New(replayer(t, srv.URL, "checks: [{name: home, path: /}]\n"), traffic.Options{Rate: 500, Concurrency: 2})
	g.Start("v2")
	for range 2 {
		<-arrived
	}
	// Both slots are taken; later ticks must be skipped.
	waitUntil(t, func() bool { return g.Stats().Skipped >= 10 })
	close(release)
	g.Stop()
	if most.Load() > 2 {
		t.Errorf("%d requests in flight at once, want at most 2", most.Load())
	}
}

// waitUntil polls cond (it watches the generator's counters, which have
// no event to wait on) with a generous bound.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("the generator did not get there within 30s")
		}
	}
}
