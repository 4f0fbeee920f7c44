package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/dashboard/fixture"
	"github.com/deploywatch/deploywatch/internal/server"
	"github.com/deploywatch/deploywatch/internal/store"
)

const benchIngest = "ci-0123456789abcdef"

func benchServe(b *testing.B, st store.Store) *httptest.Server {
	b.Helper()
	cfg, err := config.LoadServe([]byte(`store: {sqlite: unused.db}
api:
  open_read: true
  tokens: [{name: ci, scopes: [ingest, read], token_env: CI}]
`), "serve.yaml")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(server.Options{Config: cfg, Store: st, Logger: slog.New(slog.DiscardHandler),
		Env: func(string) (string, bool) { return benchIngest, true }})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(hs.Close)
	return hs
}

// BenchmarkAPIList is GET /api/v1/deploys over loopback HTTP against a
// store of 100,000 deploys, from 16 clients at once (target: over 2,000
// requests a second):
//
//	go test ./internal/server -run '^$' -bench APIList -benchtime 5s
func BenchmarkAPIList(b *testing.B) {
	st, _ := fixture.Big(b)
	hs := benchServe(b, st)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for _, bc := range []struct{ name, query string }{
		{"newest_50", "?limit=50"},
		{"service_failed", "?service=svc07&verdict=failed&limit=50"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetParallelism(8)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(hs.URL + "/api/v1/deploys" + bc.query)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}

// BenchmarkEventStreams holds 500 Server-Sent Event streams of one watch
// open while its events come in batches, and fails if any stream misses
// one; it reports how long the last stream took to see the verdict
// after it was sent:
//
//	go test ./internal/server -run '^$' -bench EventStreams -benchtime 3x
func BenchmarkEventStreams(b *testing.B) {
	const streams, batches, perBatch = 500, 20, 5
	st, _ := fixture.Big(b)
	hs := benchServe(b, st)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: streams, MaxConnsPerHost: 0}}
	post := func(path string, body any) []byte {
		data, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/api/v1"+path, bytes.NewReader(data))
		req.Header.Set("Authorization", "Bearer "+benchIngest)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			b.Fatalf("POST %s: %d %s", path, resp.StatusCode, out)
		}
		return out
	}
	var lastSeen time.Duration
	run := 0
	for b.Loop() {
		run++
		var created struct{ ID string }
		_ = json.Unmarshal(post("/deploys", map[string]any{"key": fmt.Sprintf("sse-%d-%d", time.Now().UnixNano(), run),
			"deploy": map[string]any{"service": "svc01", "started_at": time.Now()}}), &created)
		var ready, done sync.WaitGroup
		var mu sync.Mutex
		var missed []string
		seenAt := make([]time.Time, streams)
		for i := range streams {
			ready.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				resp, err := client.Get(hs.URL + "/api/v1/deploys/" + created.ID + "/events")
				if err != nil {
					ready.Done()
					mu.Lock()
					missed = append(missed, err.Error())
					mu.Unlock()
					return
				}
				defer resp.Body.Close()
				ready.Done()
				r := bufio.NewReader(resp.Body)
				want := int64(1)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						mu.Lock()
						missed = append(missed, fmt.Sprintf("stream %d ended at %d: %v", i, want, err))
						mu.Unlock()
						return
					}
					if id, ok := strings.CutPrefix(strings.TrimSpace(line), "id: "); ok {
						var got int64
						fmt.Sscan(id, &got)
						if got != want {
							mu.Lock()
							missed = append(missed, fmt.Sprintf("stream %d: event %d after %d", i, got, want-1))
							mu.Unlock()
							return
						}
						want++
					}
					if strings.TrimSpace(line) == "event: end" {
						seenAt[i] = time.Now()
						return
					}
				}
			}()
		}
		ready.Wait()
		seq := int64(0)
		var sentVerdict time.Time
		for batch := range batches {
			var evs []map[string]any
			for range perBatch {
				seq++
				kind := "measured"
				if batch == batches-1 && len(evs) == perBatch-1 {
					kind = "verdict"
				}
				evs = append(evs, map[string]any{"seq": seq, "event": map[string]any{"time": time.Now(), "event": kind,
					"elapsed_seconds": 1, "service": "svc01", "version": "v1"}})
			}
			if batch == batches-1 {
				sentVerdict = time.Now()
			}
			post("/deploys/"+created.ID+"/events", map[string]any{"events": evs})
		}
		done.Wait()
		if len(missed) > 0 {
			b.Fatalf("%d streams missed events: %v", len(missed), missed[:min(5, len(missed))])
		}
		for _, at := range seenAt {
			lastSeen = max(lastSeen, at.Sub(sentVerdict))
		}
	}
	b.ReportMetric(float64(lastSeen.Milliseconds()), "ms-to-last-stream")
	b.ReportMetric(streams, "streams")
}
