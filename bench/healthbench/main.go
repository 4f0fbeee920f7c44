// Command healthbench measures /health/ready under load while a dependency
// takes 2 s to answer, for four designs in one run:
//
//   - deploywatch/health: results cached 1 s, refreshed in the background
//     (stale-while-revalidate);
//   - the seed's handler: the check runs inside every probe;
//   - github.com/alexliesenfeld/health with a 1 s cache (checks run inside
//     the probe that finds the cache stale);
//   - github.com/alexliesenfeld/health with a 1 s periodic check.
//
// Each design is served over loopback HTTP and hit by -c concurrent
// clients for -d (closed loop), or, with -rate, at that many requests a
// second whatever the answers take (open loop: latency counts from when
// each request was due, so a stall is not hidden by the clients waiting
// on it). With -only, one design. Run from this folder:
//
//	go run . [-c 32] [-d 10s] [-delay 2s]
//	go run . -rate 10000 -d 30s -only deploywatch   # the target: p99 < 5 ms
//
// It is a module of its own so that the comparison library stays out of
// deploywatch's go.mod.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ahealth "github.com/alexliesenfeld/health"

	"github.com/deploywatch/deploywatch/health"
)

func main() {
	conc := flag.Int("c", 32, "concurrent clients")
	dur := flag.Duration("d", 10*time.Second, "load duration per design")
	delay := flag.Duration("delay", 2*time.Second, "how long the dependency takes to answer")
	rate := flag.Float64("rate", 0, "requests a second, open loop (0: -c clients, closed loop)")
	only := flag.String("only", "", "measure only the designs whose name contains this")
	flag.Parse()

	if *rate > 0 {
		fmt.Printf("/health/ready at %.0f requests/s for %s each, dependency answering in %s\n\n", *rate, *dur, *delay)
	} else {
		fmt.Printf("/health/ready, %d concurrent clients for %s each, dependency answering in %s\n\n", *conc, *dur, *delay)
	}
	fmt.Println("| design | requests/s | p50 | p99 | max | errors | dependency calls |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, d := range designs(*delay) {
		if !strings.Contains(d.name, *only) {
			d.stop()
			continue
		}
		start := d.calls.Load()
		var r result
		if *rate > 0 {
			r = measureRate(d, *rate, *dur)
		} else {
			r = measure(d, *conc, *dur)
		}
		fmt.Printf("| %s | %.0f | %s | %s | %s | %d | %d in %s |\n", d.name, r.rps, r.p50, r.p99, r.max, r.errors, d.calls.Load()-start, *dur)
		d.stop()
	}
}

// measureRate sends rate requests a second for dur, each on time whatever
// the earlier ones take, and measures each from when it was due.
func measureRate(d design, rate float64, dur time.Duration) result {
	srv := httptest.NewServer(d.handler)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096}, Timeout: 30 * time.Second}
	probe := func() error {
		resp, err := client.Get(srv.URL)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	}
	_ = probe() // the first probe of any design waits for a first result
	n := int(rate * dur.Seconds())
	lats := make([]time.Duration, n)
	var errs atomic.Int64
	var wg sync.WaitGroup
	var begin time.Time // set before the first due time is sent
	// A pool of senders takes due times in order: enough of them that a
	// slow answer never holds the schedule back.
	due := make(chan int, 1024)
	for range 512 {
		wg.Go(func() {
			for i := range due {
				at := begin.Add(time.Duration(float64(i) / rate * float64(time.Second)))
				if wait := time.Until(at); wait > 0 {
					time.Sleep(wait)
				}
				if err := probe(); err != nil {
					errs.Add(1)
				}
				lats[i] = time.Since(at)
			}
		})
	}
	begin = time.Now()
	for i := range n {
		due <- i
	}
	close(due)
	wg.Wait()
	took := time.Since(begin)
	r := summarise(lats, took)
	r.errors = errs.Load()
	return r
}

type design struct {
	name    string
	handler http.Handler
	calls   *atomic.Int64
	stop    func()
}

// dependency answers after delay, or when the caller gives up.
func dependency(delay time.Duration, calls *atomic.Int64) func(context.Context) error {
	return func(ctx context.Context) error {
		calls.Add(1)
		select {
		case <-time.After(delay):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func designs(delay time.Duration) []design {
	var out []design

	c1 := &atomic.Int64{}
	h := health.New(health.WithCheck("db", health.CheckerFunc(dependency(delay, c1)), health.Timeout(5*time.Second)),
		health.WithCacheTTL(time.Second))
	out = append(out, design{"deploywatch/health (cache 1s, background refresh)", h.ReadyHandler(), c1, func() {}})

	c2 := &atomic.Int64{}
	dep := dependency(delay, c2)
	seed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		if err := dep(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"status":"not_ready","checks":{"db":%q}}`, "error: "+err.Error())
			return
		}
		fmt.Fprint(w, `{"status":"ready","checks":{"db":"ok"}}`)
	})
	out = append(out, design{"seed: check on every probe", seed, c2, func() {}})

	c3 := &atomic.Int64{}
	cached := ahealth.NewChecker(ahealth.WithCacheDuration(time.Second), ahealth.WithTimeout(5*time.Second),
		ahealth.WithCheck(ahealth.Check{Name: "db", Check: dependency(delay, c3)}))
	out = append(out, design{"alexliesenfeld/health (cache 1s)", ahealth.NewHandler(cached), c3, func() { cached.Stop() }})

	c4 := &atomic.Int64{}
	periodic := ahealth.NewChecker(ahealth.WithTimeout(5*time.Second),
		ahealth.WithPeriodicCheck(time.Second, 0, ahealth.Check{Name: "db", Check: dependency(delay, c4), Timeout: 5 * time.Second}))
	out = append(out, design{"alexliesenfeld/health (periodic 1s)", ahealth.NewHandler(periodic), c4, func() { periodic.Stop() }})
	return out
}

type result struct {
	rps           float64
	p50, p99, max time.Duration
	errors        int64
}

func measure(d design, conc int, dur time.Duration) result {
	srv := httptest.NewServer(d.handler)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}, Timeout: 30 * time.Second}
	get := func() time.Duration {
		start := time.Now()
		resp, err := client.Get(srv.URL)
		if err != nil {
			fmt.Fprintln(os.Stderr, d.name, err)
			return time.Since(start)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(start)
	}
	get() // the first probe of any design waits for a first result
	var (
		mu   sync.Mutex
		lats []time.Duration
		wg   sync.WaitGroup
	)
	deadline := time.Now().Add(dur)
	for range conc {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(deadline) {
				mine = append(mine, get())
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return summarise(lats, dur)
}

// summarise is the rate and the latency percentiles of lats over took.
func summarise(lats []time.Duration, took time.Duration) result {
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	pct := func(p float64) time.Duration {
		return lats[min(len(lats)-1, int(p*float64(len(lats))))].Round(10 * time.Microsecond)
	}
	return result{rps: float64(len(lats)) / took.Seconds(), p50: pct(0.5), p99: pct(0.99), max: lats[len(lats)-1].Round(time.Millisecond)}
}
