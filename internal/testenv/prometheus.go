// Package testenv starts the real servers that integration tests run
// against. A server that is not installed makes the test skip, unless
// DEPLOYWATCH_REQUIRE_REAL=1 (set by scripts/test.sh and CI), where a
// missing server is a failure: a real component that a test skips is not
// tested.
package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireReal reports whether missing real components must fail tests.
func RequireReal() bool { return os.Getenv("DEPLOYWATCH_REQUIRE_REAL") == "1" }

// Missing skips or fails the test for a component that is not installed.
func Missing(tb testing.TB, what, hint string) {
	tb.Helper()
	if RequireReal() {
		tb.Fatalf("%s is not installed (%s); DEPLOYWATCH_REQUIRE_REAL=1 forbids skipping", what, hint)
	}
	tb.Skipf("%s is not installed (%s); run ./scripts/test.sh to install it", what, hint)
}

// Prometheus is a running Prometheus server.
type Prometheus struct {
	URL     string
	scrape  time.Duration
	targets int
	dir     string
	args    []string
	cmd     *exec.Cmd
	done    chan error
	stopped bool
}

// PrometheusBinary finds the prometheus binary: $PROMETHEUS_BIN, then PATH.
func PrometheusBinary() (string, bool) {
	if p := os.Getenv("PROMETHEUS_BIN"); p != "" {
		return p, true
	}
	p, err := exec.LookPath("prometheus")
	return p, err == nil
}

// StartPrometheus starts a Prometheus scraping targets (host:port) as job
// "api" every scrape interval, and stops it when the test ends.
func StartPrometheus(tb testing.TB, scrape time.Duration, targets ...string) *Prometheus {
	tb.Helper()
	quoted := make([]string, len(targets))
	for i, t := range targets {
		quoted[i] = fmt.Sprintf("%q", t)
	}
	return StartPrometheusWith(tb, scrape, len(targets), fmt.Sprintf(`  - job_name: api
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", ")))
}

// StartPrometheusWith starts a Prometheus with the given scrape_configs
// entries (YAML list items, indented by two spaces), such as a service
// discovery, expecting targets targets once they are found.
func StartPrometheusWith(tb testing.TB, scrape time.Duration, targets int, scrapeConfigs string) *Prometheus {
	tb.Helper()
	bin, ok := PrometheusBinary()
	if !ok {
		Missing(tb, "prometheus", "Debian package prometheus")
	}
	dir := tb.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: %s
  scrape_timeout: %s
  evaluation_interval: %s
scrape_configs:
%s`, scrape, scrape, scrape, scrapeConfigs)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	addr := FreeAddr(tb)
	p := &Prometheus{URL: "http://" + addr, scrape: scrape, targets: targets, dir: dir, args: []string{bin,
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}}
	p.start(tb)
	tb.Cleanup(p.Stop)
	return p
}

// start runs the server and waits until it is ready.
func (p *Prometheus) start(tb testing.TB) {
	tb.Helper()
	cmd := exec.Command(p.args[0], p.args[1:]...)
	logf, err := os.OpenFile(filepath.Join(p.dir, "prometheus.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting prometheus: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logf.Close() }()
	p.cmd, p.done, p.stopped = cmd, done, false
	if err := WaitHTTP(p.URL+"/-/ready", 30*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "prometheus.log"))
		tb.Fatalf("prometheus did not become ready: %v\n%s", err, log)
	}
}

// Restart stops the server and starts it again on the same address and
// data directory, as an upgrade or a rescheduled pod does: what it
// stored survives, the scrapes while it was down are lost.
func (p *Prometheus) Restart(tb testing.TB) {
	tb.Helper()
	p.Stop()
	p.start(tb)
}

// WaitForHistory returns once Prometheus holds d of scrapes of every
// target (the history a baseline is measured on): it asks, every scrape
// interval, how many samples of up each target has. It fails the test if
// that takes much longer than d.
func (p *Prometheus) WaitForHistory(tb testing.TB, d time.Duration) {
	tb.Helper()
	if d <= 0 {
		return
	}
	want := int(d / p.scrape)
	q := fmt.Sprintf("count(count_over_time(up[1h]) >= %d)", want)
	deadline := time.Now().Add(d + 30*time.Second)
	tick := time.NewTicker(p.scrape)
	defer tick.Stop()
	for range tick.C {
		if n, err := p.queryNumber(q); err == nil && int(n) >= p.targets {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("prometheus did not collect %s of history of %d targets within %s", d, p.targets, d+30*time.Second)
		}
	}
}

// WaitUntilScraped returns once Prometheus has scraped every target at or
// after at: the history up to at is recorded. It fails the test if that
// takes more than 30s past at.
func (p *Prometheus) WaitUntilScraped(tb testing.TB, at time.Time) {
	tb.Helper()
	q := fmt.Sprintf("count(timestamp(up) >= %f)", float64(at.UnixNano())/1e9)
	tick := time.NewTicker(p.scrape)
	defer tick.Stop()
	for range tick.C {
		if n, err := p.queryNumber(q); err == nil && int(n) >= p.targets {
			return
		}
		if time.Since(at) > 30*time.Second {
			tb.Fatalf("prometheus did not scrape its %d targets after %s within 30s", p.targets, at.Format(time.RFC3339))
		}
	}
}

// queryNumber runs an instant query that returns one number.
func (p *Prometheus) queryNumber(q string) (float64, error) {
	resp, err := http.Get(p.URL + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	if len(body.Data.Result) == 0 {
		return 0, nil
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// Stop stops the server (idempotent).
func (p *Prometheus) Stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// FreeAddr returns a loopback address with a port nobody listens on. The
// port is chosen below the kernel's ephemeral range: a port the kernel hands
// out (":0") can be taken by an outgoing connection between this call and the
// server's bind, which is a flaky "address already in use" on a busy test run.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	lo := ephemeralLow()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := minTestPort + rand.IntN(lo-minTestPort)
		if portsGiven[port] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		portsGiven[port] = true
		return addr
	}
	tb.Fatalf("no free loopback port in [%d, %d)", minTestPort, lo)
	return ""
}

const minTestPort = 20000

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// net.ipv4.ip_local_port_range), 32768 if it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= minTestPort+1000 {
		return 32768
	}
	return lo
}

// WaitTCP polls addr until it accepts a connection or the timeout passes.
func WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func splitHostPort(addr string) (string, string, error) { return net.SplitHostPort(addr) }

// WaitHTTP polls url until it answers 200 or the timeout passes.
func WaitHTTP(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %v)", url, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
