package ingest

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/server"
	"github.com/deploywatch/deploywatch/internal/store/sqlite"
	"github.com/deploywatch/deploywatch/internal/watch"
)

const token = "ingest-0123456789abcdef"

// serve is a real history server over a real SQLite store.
func serve(t *testing.T) string {
	t.Helper()
	cfg, err := config.LoadServe([]byte(`store: {sqlite: unused.db}
api:
  tokens:
    - {name: ci, scopes: [ingest, read], token_env: CI_TOKEN}
`), "serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.New(server.Options{Config: cfg, Store: st, Logger: slog.New(slog.DiscardHandler),
		Env: func(k string) (string, bool) { return token, k == "CI_TOKEN" }})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs.URL
}

var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

// aWatch is the events and reports of a failed watch, as an engine gives
// them.
func aWatch() (events []watch.Event, progress, final *watch.Report) {
	d := &watch.Deploy{Service: "checkout", Environment: "prod", Version: "v2", PreviousVersion: "v1", StartedAt: t0, TriggeredBy: "ci"}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	check := &watch.CheckResult{Name: "error_rate", Type: "error_rate", Verdict: judge.Fail}
	events = []watch.Event{
		{Time: at(0), Kind: event.Started, Service: "checkout", Version: "v2", Deploy: d},
		{Time: at(1), Kind: event.PhaseStarted, Service: "checkout", Version: "v2", Phase: "rollout"},
		{Time: at(1), Kind: event.HookOutput, Service: "checkout", Version: "v2", Hook: "deploy", Message: "applying"},
		{Time: at(30), Kind: event.Measured, Service: "checkout", Version: "v2", Checks: []*watch.CheckResult{check}},
		{Time: at(30), Kind: event.Breached, Service: "checkout", Version: "v2", Check: check},
		{Time: at(31), Kind: event.RollbackStarted, Service: "checkout", Version: "v2"},
		{Time: at(40), Kind: event.RollbackDone, Service: "checkout", Version: "v2"},
		{Time: at(40), Kind: event.Verdict, Service: "checkout", Version: "v2"},
	}
	progress = &watch.Report{Verdict: watch.InProgress, Deploy: *d, Checks: []*watch.CheckResult{check}}
	detected := at(30)
	final = &watch.Report{Verdict: watch.Failed, Reason: "error_rate breached", Deploy: *d, Checks: []*watch.CheckResult{check},
		DetectedAt: &detected, Rollback: &watch.RollbackRecord{Performed: true, OK: true}, EndedAt: at(40)}
	return events, progress, final
}

func get(t *testing.T, url string, out any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

type stored struct {
	ID      string `json:"id"`
	Verdict string `json:"verdict"`
	Deploy  struct {
		Version    string     `json:"version"`
		CommitTime *time.Time `json:"commit_time"`
	} `json:"deploy"`
	Rollback *struct {
		Performed bool `json:"performed"`
		OK        bool `json:"ok"`
	} `json:"rollback"`
	Events []struct {
		Seq   int64 `json:"seq"`
		Event struct {
			Kind string `json:"event"`
		} `json:"event"`
	} `json:"events"`
}

func TestIngest(t *testing.T) {
	url := serve(t)
	commit := t0.Add(-time.Hour)
	c, err := New(Options{URL: url + "/", Token: token, Key: "run-1", CommitTime: &commit})
	if err != nil {
		t.Fatal(err)
	}
	events, progress, final := aWatch()
	for i, e := range events {
		c.Event(e)
		if i == 3 {
			_ = c.Checkpoint(&watch.State{Report: progress})
		}
	}
	d := c.Close(final, 10*time.Second)
	if !d.OK || d.Sink != "server" {
		t.Fatalf("delivery = %+v, want ok", d)
	}

	var list struct {
		Deploys []stored `json:"deploys"`
	}
	get(t, url+"/api/v1/deploys", &list)
	if len(list.Deploys) != 1 {
		t.Fatalf("%d deploys in the history, want 1", len(list.Deploys))
	}
	var got stored
	get(t, url+"/api/v1/deploys/"+list.Deploys[0].ID, &got)
	if got.Verdict != "failed" || got.Rollback == nil || !got.Rollback.Performed || !got.Rollback.OK {
		t.Errorf("stored verdict %q rollback %+v, want failed with a rollback done", got.Verdict, got.Rollback)
	}
	if got.Deploy.CommitTime == nil || !got.Deploy.CommitTime.Equal(commit) {
		t.Errorf("commit time %v, want %v", got.Deploy.CommitTime, commit)
	}
	var kinds []string
	for i, e := range got.Events {
		kinds = append(kinds, e.Event.Kind)
		if i > 0 && e.Seq <= got.Events[i-1].Seq {
			t.Errorf("event %d numbered %d after %d", i, e.Seq, got.Events[i-1].Seq)
		}
	}
	want := "started phase_started measured breached rollback_started rollback_done verdict" // no hook output
	if strings.Join(kinds, " ") != want {
		t.Errorf("stored events %v, want %s", kinds, want)
	}

	// The same watch again (a resumed process): the same deploy, no
	// duplicates.
	c2, err := New(Options{URL: url, Token: token, Key: "run-1"})
	if err != nil {
		t.Fatal(err)
	}
	c2.Event(events[0])
	c2.Event(watch.Event{Time: t0.Add(50 * time.Second), Kind: event.Resumed, Service: "checkout", Version: "v2"})
	if d := c2.Close(final, 10*time.Second); !d.OK {
		t.Fatalf("resumed delivery = %+v", d)
	}
	get(t, url+"/api/v1/deploys", &list)
	if len(list.Deploys) != 1 {
		t.Fatalf("%d deploys after a resume, want 1", len(list.Deploys))
	}
	get(t, url+"/api/v1/deploys/"+list.Deploys[0].ID, &got)
	if n := len(got.Events); n != len(kinds)+1 {
		t.Errorf("%d events after the resume, want %d (the resumed one added, the started one taken once)", n, len(kinds)+1)
	}
}

// A server that does not answer never delays the watch, and the delivery
// says what was lost.
func TestIngestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	c, err := New(Options{URL: "http://" + addr, Token: token, Key: "run-1", MaxQueue: 3})
	if err != nil {
		t.Fatal(err)
	}
	events, progress, final := aWatch()
	for _, e := range events {
		c.Event(e)
	}
	_ = c.Checkpoint(&watch.State{Report: progress})
	start := time.Now()
	d := c.Close(final, 300*time.Millisecond)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %v with a bound of 300ms", took)
	}
	if d.OK {
		t.Fatal("delivery ok to a server that is not there")
	}
	for _, want := range []string{"not delivered to http://" + addr, "the deploy", "7 events", "the report", "refused"} {
		if !strings.Contains(d.Error, want) {
			t.Errorf("delivery error %q does not say %q", d.Error, want)
		}
	}
}

func TestIngestSlowServer(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hs.Close()
	defer close(release)
	c, err := New(Options{URL: hs.URL, Token: token, Key: "run-1", Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	events, progress, final := aWatch()
	c.Event(events[0])
	<-entered // serve holds the first request
	for range 20000 {
		c.Event(events[3])
		_ = c.Checkpoint(&watch.State{Report: progress})
	}
	d := c.Close(final, 100*time.Millisecond)
	if d.OK || !strings.Contains(d.Error, "the deploy, 20001 events (10001 past the queue's bound of 10000), the report") {
		t.Errorf("delivery = %+v, want the deploy, every event and the report said lost", d)
	}
}

// A refused or failed request is retried; what serve took is taken once.
func TestIngestRetries(t *testing.T) {
	url := serve(t)
	var n atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 1 {
			http.Error(w, `{"error":"try later"}`, http.StatusServiceUnavailable)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, url+r.URL.Path, r.Body)
		req.Header = r.Header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	defer flaky.Close()

	c, err := New(Options{URL: flaky.URL, Token: token, Key: "run-1"})
	if err != nil {
		t.Fatal(err)
	}
	events, _, final := aWatch()
	for _, e := range events {
		c.Event(e)
	}
	if d := c.Close(final, 30*time.Second); !d.OK {
		t.Fatalf("delivery = %+v", d)
	}
	var list struct {
		Deploys []stored `json:"deploys"`
	}
	get(t, url+"/api/v1/deploys", &list)
	if len(list.Deploys) != 1 || list.Deploys[0].Verdict != "failed" {
		t.Fatalf("history %+v, want the one failed deploy", list.Deploys)
	}
	var got stored
	get(t, url+"/api/v1/deploys/"+list.Deploys[0].ID, &got)
	if len(got.Events) != len(events)-1 {
		t.Errorf("%d events stored, want %d", len(got.Events), len(events)-1)
	}
}

func TestIngestOptions(t *testing.T) {
	for _, u := range []string{"", "serve:8080", "ftp://serve", "http://user:pw@serve", "http:///api"} {
		if _, err := New(Options{URL: u, Key: "k"}); err == nil || !strings.Contains(err.Error(), "--server") {
			t.Errorf("New(%q) = %v, want an error naming --server", u, err)
		}
	}
}
