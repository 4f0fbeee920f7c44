// Package traffic sends synthetic requests to a service during a watch, so
// that a service too quiet to judge from its own traffic (0.1 req/s) can
// still be judged in minutes. The requests are a smoke suite's, sent at a
// set rate, bounded in number and in concurrency, and marked with a header
// so that the service (and its metrics) can tell them apart.
package traffic

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultHeader marks every synthetic request; its value is the version
// being watched.
const DefaultHeader = "X-Deploywatch-Synthetic"

// Sender sends the i-th request with the marking header and returns the
// answer's status.
type Sender interface {
	Len() int
	Send(ctx context.Context, i int, header, value string) (int, error)
}

// Options bound a generator.
type Options struct {
	// Rate is requests a second.
	Rate float64
	// Max bounds the requests sent in all.
	Max int64
	// Concurrency bounds the requests in flight; a tick that finds them
	// all busy is skipped, never queued. Default 4.
	Concurrency int
	// Header marks each request.
	Header string
}

// Stats count what a generator did.
type Stats struct {
	Sent         int64 `json:"sent"`
	ServerErrors int64 `json:"server_errors"` // 5xx answers
	Failed       int64 `json:"failed"`        // no answer
	Skipped      int64 `json:"skipped"`       // ticks with every slot busy
	// LastError is the latest request that got no answer.
	LastError string `json:"last_error,omitempty"`
}

// Generator sends requests at a rate until stopped or its bound is reached.
type Generator struct {
	s    Sender
	o    Options
	mu   sync.Mutex
	st   Stats
	stop context.CancelFunc
	done chan struct{}
}

// New returns a generator; Start begins sending.
func New(s Sender, o Options) *Generator {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Header == "" {
		o.Header = DefaultHeader
	}
	return &Generator{s: s, o: o}
}

// Start begins sending, each request marked with value (the version
// watched), until Stop or the bound. A second Start does nothing.
func (g *Generator) Start(value string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done != nil || !(g.o.Rate > 0) {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.stop, g.done = cancel, make(chan struct{})
	go g.run(ctx, value)
}

// Stop stops sending, waits for the requests in flight, and returns the
// counts.
func (g *Generator) Stop() Stats {
	g.mu.Lock()
	stop, done := g.stop, g.done
	g.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st
}

// Stats returns the counts so far.
func (g *Generator) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st
}

func (g *Generator) run(ctx context.Context, value string) {
	defer close(g.done)
	every := time.Duration(float64(time.Second) / g.o.Rate)
	tick := time.NewTicker(max(every, time.Millisecond))
	defer tick.Stop()
	slots := make(chan struct{}, g.o.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	var n atomic.Int64
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if g.o.Max > 0 && n.Load() >= g.o.Max {
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			g.count(func(s *Stats) { s.Skipped++ })
			continue
		}
		n.Add(1)
		wg.Go(func() {
			defer func() { <-slots }()
			status, err := g.s.Send(ctx, i, g.o.Header, value)
			if ctx.Err() != nil && err != nil {
				return // stopped: not the service's failure
			}
			g.count(func(s *Stats) {
				s.Sent++
				switch {
				case err != nil:
					s.Failed++
					s.LastError = err.Error()
				case status >= 500:
					s.ServerErrors++
				}
			})
		})
	}
}

func (g *Generator) count(f func(*Stats)) {
	g.mu.Lock()
	f(&g.st)
	g.mu.Unlock()
}
