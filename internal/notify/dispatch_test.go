package notify_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/notify"
	"github.com/deploywatch/deploywatch/internal/notify/notifytest"
	"github.com/deploywatch/deploywatch/internal/notify/webhook"
	"github.com/deploywatch/deploywatch/internal/watch"
)

func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func TestRetriesHonourRetryAfter(t *testing.T) {
	var calls atomic.Int32
	var first, second time.Time
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			http.Error(w, "rate_limited", http.StatusTooManyRequests)
		case 2:
			second = time.Now()
			http.Error(w, "rollup_error", http.StatusInternalServerError)
		default:
		}
	})
	d := notify.NewDispatcher([]notify.Sink{webhook.New(srv.URL, "", nil, nil)}, notify.DispatchOptions{Backoff: 10 * time.Millisecond})
	d.Send(notifytest.Message(event.Verdict))
	d.Flush(10 * time.Second)
	dl := d.Deliveries()
	if len(dl) != 1 || !dl[0].OK || calls.Load() != 3 {
		t.Fatalf("deliveries %+v after %d calls", dl, calls.Load())
	}
	if gap := second.Sub(first); gap < 900*time.Millisecond {
		t.Errorf("retried after %s, before the server's Retry-After of 1s", gap)
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	var calls atomic.Int32
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "invalid_payload", http.StatusBadRequest)
	})
	d := notify.NewDispatcher([]notify.Sink{webhook.New(srv.URL, "", nil, nil)}, notify.DispatchOptions{Backoff: time.Millisecond})
	d.Send(notifytest.Message(event.Started))
	d.Flush(5 * time.Second)
	if dl := d.Deliveries(); len(dl) != 1 || dl[0].OK || !strings.Contains(dl[0].Error, "invalid_payload") || calls.Load() != 1 {
		t.Fatalf("%+v, %d calls", dl, calls.Load())
	}
}

// TestAHangingSinkNeverBlocks: sending never waits, and Flush gives up in
// bounded time, recording what was not delivered.
func TestAHangingSinkNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	d := notify.NewDispatcher([]notify.Sink{webhook.New(srv.URL, "", nil, nil)}, notify.DispatchOptions{Timeout: 200 * time.Millisecond, Backoff: 10 * time.Millisecond})
	start := time.Now()
	for range 100 { // more than the queue holds
		d.Event(watch.Event{Kind: event.Started, Deploy: &watch.Deploy{Service: "api"}, Service: "api"})
	}
	if el := time.Since(start); el > time.Second { // a blocked send would wait for the 200ms timeouts, 100 times
		t.Fatalf("sending took %s: it blocked", el)
	}
	start = time.Now()
	d.Flush(time.Second)
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("flush took %s", el)
	}
	var dropped, gaveUp int
	for _, dl := range d.Deliveries() {
		switch {
		case strings.Contains(dl.Error, "queue is full"):
			dropped++
		case strings.Contains(dl.Error, "not delivered before deploywatch exited") || strings.Contains(dl.Error, "no answer within"):
			gaveUp++
		}
	}
	if dropped == 0 || gaveUp == 0 {
		t.Fatalf("dropped %d, gave up %d: %+v", dropped, gaveUp, d.Deliveries())
	}
}

// orderSink records the order it is sent messages.
type orderSink struct {
	mu   sync.Mutex
	got  []event.Kind
	slow time.Duration
}

func (o *orderSink) Name() string            { return "order" }
func (o *orderSink) Wants(k event.Kind) bool { return true }
func (o *orderSink) Send(ctx context.Context, m notify.Message) error {
	time.Sleep(o.slow)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, m.Kind)
	return nil
}

func TestOrderPerSinkAndEventMapping(t *testing.T) {
	o := &orderSink{slow: 20 * time.Millisecond}
	d := notify.NewDispatcher([]notify.Sink{o}, notify.DispatchOptions{})
	rep := &watch.Report{Verdict: watch.Failed, Reason: "x", Rollback: &watch.RollbackRecord{Performed: true, OK: true}}
	for _, e := range []watch.Event{
		{Kind: event.Started, Deploy: &watch.Deploy{Service: "api", PreviousVersion: "v1"}},
		{Kind: event.Measured},
		{Kind: event.RollbackStarted},
		{Kind: event.RollbackDone, Rollback: rep.Rollback},
		{Kind: event.Verdict, Report: rep},
	} {
		d.Event(e)
	}
	d.Flush(5 * time.Second)
	want := []event.Kind{event.Started, event.RollbackStarted, event.RollbackDone, event.Verdict}
	if len(o.got) != len(want) {
		t.Fatalf("got %v", o.got)
	}
	for i := range want {
		if o.got[i] != want[i] {
			t.Fatalf("got %v, want %v", o.got, want)
		}
	}
}
