// Package loadgen serves a handler and drives Poisson-distributed traffic
// at it, for the services of the demo and of the tests: a service with
// users of its own.
package loadgen

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"
)

// Runner is a running server and its traffic.
type Runner struct {
	srv    *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start serves h on ln and sends rps GET requests per second to path on
// it, except while paused reports true (traffic that no longer reaches
// the service).
func Start(ln net.Listener, h http.Handler, path string, rps float64, paused func() bool) *Runner {
	r := &Runner{srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Go(func() {
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err)
		}
	})
	url := "http://" + ln.Addr().String() + path
	r.wg.Go(func() { drive(ctx, url, rps, paused) })
	return r
}

// Close stops the traffic, then the server.
func (r *Runner) Close() {
	r.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
	r.wg.Wait()
}

func drive(ctx context.Context, url string, rps float64, paused func() bool) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(rand.ExpFloat64() / rps * float64(time.Second))):
		}
		if paused != nil && paused() {
			continue
		}
		inflight.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
}
