package notify

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// DispatchOptions bound delivery.
type DispatchOptions struct {
	// Timeout bounds one attempt. Default 10s.
	Timeout time.Duration
	// Retries is how many times a retryable failure (429, 5xx, network) is
	// retried, with jittered exponential backoff honouring Retry-After.
	// Default 3.
	Retries int
	// Backoff is the first retry's delay. Default 500ms.
	Backoff time.Duration
	// RunURL and DashboardURL are added to every message.
	RunURL, DashboardURL string
}

// Dispatcher is a watch.Observer that delivers messages to sinks, each
// from its own queue and goroutine, in order: a sink that hangs delays
// only itself, never the engine.
type Dispatcher struct {
	opts    DispatchOptions
	workers []*worker
	stop    context.Context
	cancel  context.CancelFunc

	mu         sync.Mutex
	deploy     watch.Deploy
	deliveries []watch.Delivery
	closed     bool
}

type worker struct {
	sink  Sink
	queue chan Message
	done  chan struct{}
}

var _ watch.Observer = (*Dispatcher)(nil)

const queueSize = 64

// NewDispatcher starts a worker per sink.
func NewDispatcher(sinks []Sink, o DispatchOptions) *Dispatcher {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Retries == 0 {
		o.Retries = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = 500 * time.Millisecond
	}
	d := &Dispatcher{opts: o}
	d.stop, d.cancel = context.WithCancel(context.Background())
	for _, s := range sinks {
		w := &worker{sink: s, queue: make(chan Message, queueSize), done: make(chan struct{})}
		d.workers = append(d.workers, w)
		go d.run(w)
	}
	return d
}

// Event turns an engine event into a message for the sinks that want it.
// It never blocks.
func (d *Dispatcher) Event(e watch.Event) {
	m, ok := d.message(e)
	if !ok {
		return
	}
	d.Send(m)
}

// Send queues a message for every sink that wants it, without blocking.
func (d *Dispatcher) Send(m Message) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	for _, w := range d.workers {
		if !w.sink.Wants(m.Kind) {
			continue
		}
		select {
		case w.queue <- m:
		default:
			d.deliveries = append(d.deliveries, watch.Delivery{Sink: w.sink.Name(), Event: string(m.Kind), Error: "dropped: the sink's queue is full"})
		}
	}
}

func (d *Dispatcher) message(e watch.Event) (Message, bool) {
	d.mu.Lock()
	if e.Deploy != nil {
		d.deploy = *e.Deploy
	}
	dep := d.deploy
	d.mu.Unlock()
	m := Message{
		Service: e.Service, Environment: dep.Environment, Version: e.Version,
		PreviousVersion: dep.PreviousVersion, TriggeredBy: dep.TriggeredBy, StartedAt: dep.StartedAt,
		At: e.Time, RunURL: d.opts.RunURL, DashboardURL: d.opts.DashboardURL,
	}
	m.Kind = e.Kind
	switch e.Kind {
	case event.Started, event.Resumed:
	case event.Breached:
		m.Check, m.Reason = e.Check, e.Message
	case event.PhaseEnded:
		m.Reason = string(e.Outcome) + ": " + e.Phase
		if e.Message != "" {
			m.Reason += ": " + e.Message
		}
	case event.RollbackStarted:
		m.Reason = e.Message
	case event.RollbackDone, event.RollbackFailed:
		m.Rollback, m.Reason = e.Rollback, e.Message
	case event.Verdict:
		r := e.Report
		m.Report, m.Verdict, m.Reason, m.Rollback = r, string(r.Verdict), r.Reason, r.Rollback
		m.PreviousVersion, m.StartedAt = r.Deploy.PreviousVersion, r.Deploy.StartedAt
		for _, c := range r.Checks {
			if c.Verdict == judge.Fail {
				m.Check = c
				break
			}
		}
	default:
		return Message{}, false
	}
	return m, true
}

func (d *Dispatcher) run(w *worker) {
	defer close(w.done)
	for m := range w.queue {
		err := d.deliver(w.sink, m)
		dl := watch.Delivery{Sink: w.sink.Name(), Event: string(m.Kind), OK: err == nil}
		if err != nil {
			dl.Error = err.Error()
		}
		d.mu.Lock()
		d.deliveries = append(d.deliveries, dl)
		d.mu.Unlock()
	}
}

// deliver sends with retries; Flush's deadline ends the waiting.
func (d *Dispatcher) deliver(s Sink, m Message) error {
	delay := d.opts.Backoff
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(d.stop, d.opts.Timeout)
		err := s.Send(ctx, m)
		timedOut := ctx.Err() != nil && d.stop.Err() == nil
		cancel()
		if timedOut && err != nil {
			err = &RetryError{Err: errors.New("no answer within " + d.opts.Timeout.String())}
		}
		if err == nil || !errors.Is(err, ErrRetry) || attempt >= d.opts.Retries || d.stop.Err() != nil {
			if err != nil && d.stop.Err() != nil {
				return errors.New("not delivered before deploywatch exited: " + err.Error())
			}
			return err
		}
		wait := delay + rand.N(delay/2+1)
		var re *RetryError
		if errors.As(err, &re) && re.After > wait {
			wait = min(re.After, 30*time.Second)
		}
		select {
		case <-d.stop.Done():
			return errors.New("not delivered before deploywatch exited: " + err.Error())
		case <-time.After(wait):
		}
		delay *= 2
	}
}

// Flush delivers what is queued, waiting at most timeout; what is still
// pending then is given up and recorded as such. The dispatcher takes no
// messages afterwards.
func (d *Dispatcher) Flush(timeout time.Duration) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	for _, w := range d.workers {
		close(w.queue)
	}
	d.mu.Unlock()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, w := range d.workers {
		select {
		case <-w.done:
		case <-deadline.C:
			d.cancel()
			<-w.done
		}
	}
	d.cancel()
}

// Deliveries returns every delivery's outcome so far.
func (d *Dispatcher) Deliveries() []watch.Delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]watch.Delivery(nil), d.deliveries...)
}

// Observers fans one event out to several observers.
type Observers []watch.Observer

// Event calls each observer in turn.
func (o Observers) Event(e watch.Event) {
	for _, x := range o {
		x.Event(e)
	}
}
