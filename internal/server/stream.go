package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/deploywatch/deploywatch/internal/store"
)

// hub tells the event streams of a deploy that it has new events: this
// replica's watch writers and the ingest API call notify. Streams also
// look every second by themselves, for events another replica wrote.
type hub struct {
	mu     sync.Mutex
	topics map[string]chan struct{}
}

func newHub() *hub { return &hub{topics: map[string]chan struct{}{}} }

// wait returns a channel closed at the deploy's next notify.
func (h *hub) wait(id string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.topics[id]
	if !ok {
		ch = make(chan struct{})
		h.topics[id] = ch
	}
	return ch
}

// notify wakes the deploy's streams.
func (h *hub) notify(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, ok := h.topics[id]; ok {
		close(ch)
		delete(h.topics, id)
	}
}

// Stream timing.
const (
	streamPoll      = time.Second
	streamHeartbeat = 15 * time.Second
	streamWrite     = 30 * time.Second
)

// streamEvents is GET /deploys/{id}/events as Server-Sent Events: the
// events stored so far (after Last-Event-ID, for a reconnect), then the
// new ones as they come; it ends after the verdict.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request, _ string) {
	id := r.PathValue("id")
	if !validID(id) {
		writeError(w, http.StatusBadRequest, "id", "not a deploy id")
		return
	}
	// Where to begin: Last-Event-ID (a reconnect), else ?after= (a page
	// that has rendered the events up to there), else the first event.
	var after int64
	for _, from := range []struct{ field, v string }{{"Last-Event-ID", r.Header.Get("Last-Event-ID")}, {"after", r.URL.Query().Get("after")}} {
		if from.v == "" {
			continue
		}
		n, err := strconv.ParseInt(from.v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, from.field, "%q: want the seq of the last event received", from.v)
			return
		}
		after = n
		break
	}
	d, err := s.store.Deploy(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "id", "no deploy %s", id)
		return
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ended := d.Verdict != store.InProgress
	send := func(format string, args ...any) error {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWrite))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send("retry: 2000\n\n"); err != nil {
		return
	}
	heartbeat := time.NewTicker(streamHeartbeat)
	defer heartbeat.Stop()
	for {
		wake := s.hub.wait(id)
		events, err := s.store.Events(r.Context(), id, after)
		if err != nil {
			return
		}
		for _, e := range events {
			if err := send("id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Kind, e.Data); err != nil {
				return
			}
			after = e.Seq
			if e.Kind == "verdict" {
				_ = send("event: end\ndata: {}\n\n")
				return
			}
		}
		if ended && len(events) == 0 {
			// An ended deploy whose events hold no verdict (cut short):
			// nothing more will come.
			_ = send("event: end\ndata: {}\n\n")
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-wake:
		case <-time.After(streamPoll):
			if !ended {
				if d, err := s.store.Deploy(context.WithoutCancel(r.Context()), id); err == nil && d.Verdict != store.InProgress {
					ended = true // one more look, then end
				}
			}
		case <-heartbeat.C:
			if err := send(": keep-alive\n\n"); err != nil {
				return
			}
		}
	}
}
