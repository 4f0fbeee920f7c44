package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// writer takes one watch's checkpoints and events to the store from its
// own goroutine, so that a slow or unreachable store never delays the
// watch: the newest checkpoint wins, events queue (bounded), and writes
// that fail are retried until the store is back. A checkpoint taken just
// before an action (the deploy began, a rollback begins) is waited for, a
// little, since another replica resuming from an older one would not know
// of the action.
type writer struct {
	store   store.Store
	hub     *hub
	id      string
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	pending *store.Progress // the newest checkpoint not yet written
	version int             // of the newest checkpoint taken
	written int             // of the newest checkpoint written
	events  []store.Event
	lost    int // events dropped because the queue was full
	wake    chan struct{}
	done    chan struct{}
	closing bool
	flushed chan struct{}
}

const (
	// maxQueuedEvents bounds the events kept while the store is away.
	maxQueuedEvents = 10000
	// criticalWait bounds the wait for a checkpoint taken before an action.
	criticalWait = 2 * time.Second
	// storeTimeout bounds one write.
	storeTimeout = 5 * time.Second
)

func newWriter(s store.Store, h *hub, id string, log *slog.Logger, m *metrics) *writer {
	w := &writer{store: s, hub: h, id: id, log: log, metrics: m, wake: make(chan struct{}, 1), done: make(chan struct{}), flushed: make(chan struct{})}
	go w.run()
	return w
}

// Checkpoint queues the state; before an action it waits for it to be
// written (within criticalWait).
func (w *writer) Checkpoint(s *watch.State) error {
	p, err := progressOf(s)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.version++
	v := w.version
	w.pending = &p
	w.mu.Unlock()
	w.poke()
	if critical(s) {
		deadline := time.Now().Add(criticalWait)
		for time.Now().Before(deadline) {
			w.mu.Lock()
			ok := w.written >= v
			w.mu.Unlock()
			if ok {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		w.log.Warn("the store has not taken the checkpoint before an action; going on", "deploy", w.id)
	}
	return nil
}

// final queues the record that ends a watch the engine did not end itself
// (a superseded one).
func (w *writer) final(p store.Progress) {
	w.mu.Lock()
	w.version++
	w.pending = &p
	w.mu.Unlock()
	w.poke()
}

// critical reports whether the state was taken just before an action
// another replica must know of: the deploy began, or a rollback begins.
func critical(s *watch.State) bool {
	ph := s.Report.Phases
	if len(ph) == 0 {
		return false
	}
	last := ph[len(ph)-1]
	return last.EndedAt == nil && (last.Name == watch.PhaseRollback || last.Name == watch.PhasePause)
}

// Event queues an engine event.
func (w *writer) Event(e watch.Event) {
	data, err := json.Marshal(e)
	if err != nil {
		return
	}
	w.mu.Lock()
	if len(w.events) >= maxQueuedEvents {
		w.events = w.events[1:]
		w.lost++
	}
	w.events = append(w.events, store.Event{Time: e.Time, Kind: string(e.Kind), Data: data})
	w.mu.Unlock()
	w.poke()
}

func (w *writer) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// close writes what is left, retrying for at most within; it returns
// whether everything reached the store.
func (w *writer) close(within time.Duration) bool {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.poke()
	select {
	case <-w.flushed:
	case <-time.After(within):
	}
	close(w.done)
	w.mu.Lock()
	defer w.mu.Unlock()
	left := len(w.events) + w.lost
	if w.pending != nil {
		left++
	}
	if left > 0 {
		w.log.Error("the store did not take everything of a watch", "deploy", w.id, "events_lost", len(w.events)+w.lost, "checkpoint_lost", w.pending != nil)
	}
	return left == 0
}

func (w *writer) run() {
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-w.done:
			return
		case <-w.wake:
		case <-time.After(backoff):
		}
		if w.flush() {
			backoff = 100 * time.Millisecond
			w.mu.Lock()
			idle := w.closing && w.pending == nil && len(w.events) == 0
			w.mu.Unlock()
			if idle {
				close(w.flushed)
				<-w.done
				return
			}
			continue
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// flush writes the queued events, then the newest checkpoint. It reports
// whether nothing failed.
func (w *writer) flush() bool {
	w.mu.Lock()
	events := w.events
	p, v := w.pending, w.version
	w.mu.Unlock()
	if len(events) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		err := w.store.AppendEvents(ctx, w.id, events)
		cancel()
		if err != nil {
			w.metrics.storeErrors.WithLabelValues("events").Inc()
			w.log.Warn("the store did not take a watch's events; retrying", "deploy", w.id, "err", err)
			return false
		}
		w.mu.Lock()
		w.events = w.events[len(events):]
		w.mu.Unlock()
		w.hub.notify(w.id)
	}
	if p != nil {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		err := w.store.Checkpoint(ctx, w.id, *p)
		cancel()
		if err != nil {
			w.metrics.storeErrors.WithLabelValues("checkpoint").Inc()
			w.log.Warn("the store did not take a watch's checkpoint; retrying", "deploy", w.id, "err", err)
			return false
		}
		w.mu.Lock()
		if w.version == v {
			w.pending = nil
		}
		w.written = max(w.written, v)
		w.mu.Unlock()
		w.hub.notify(w.id)
	}
	return true
}

// progressOf is what the store keeps of a state.
func progressOf(s *watch.State) (store.Progress, error) {
	r := s.Report
	state, err := s.Encode()
	if err != nil {
		return store.Progress{}, err
	}
	report, err := r.Encode()
	if err != nil {
		return store.Progress{}, err
	}
	p := store.Progress{
		Verdict: string(r.Verdict), Reason: r.Reason, PreviousVersion: r.Deploy.PreviousVersion,
		DetectedAt: r.DetectedAt, Report: report, State: state,
	}
	if r.Verdict.Ended() {
		end := r.EndedAt
		p.EndedAt = &end
	}
	if rb := r.Rollback; rb != nil {
		p.RolledBack, p.RollbackOK = rb.Performed, rb.OK
	}
	return p, nil
}
