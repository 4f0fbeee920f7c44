// Package verify is the post-deploy checklist: metrics flow, the service
// is ready, it runs the version that was deployed, its smoke tests pass,
// and its logs show no new errors. Each item runs when its inputs are
// configured (or, for logs, when they can be read) and is otherwise
// skipped, never failed.
package verify

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/jq"
	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/smoke"
	"github.com/deploywatch/deploywatch/internal/textutil"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// LogSource reads log lines written between since and until. newVersion
// asks for the new version's lines only (Kubernetes: the new pods).
type LogSource interface {
	LogLines(ctx context.Context, since, until time.Time, newVersion bool) ([]string, error)
}

// Sources are what the checklist reads besides HTTP; either may be nil.
type Sources struct {
	// Metrics answers the metrics item's queries.
	Metrics watch.Querier
	// Logs reads the service's logs (on Kubernetes, the pods'); a
	// verify.logs.command replaces it.
	Logs LogSource
	// Vars gives the metrics selector's platform variables for the new
	// version (Kubernetes: its pods), when the platform has some.
	Vars func(ctx context.Context) map[string]string
}

// Checklist runs the metrics item (with a metric source) and the items of
// a config's verify section.
type Checklist struct {
	v        *config.Verify
	metrics  *metricsItem
	suite    *smoke.Suite
	logs     LogSource
	patterns []*regexp.Regexp
	client   *http.Client
	env      func(string) (string, bool)
	now      func() time.Time
	poll     time.Duration

	mu     sync.Mutex
	before *logCount
}

type logCount struct {
	matches int
	window  time.Duration
	err     error
}

var _ watch.ResumableChecklist = (*Checklist)(nil)

// savedState is what Before measured, kept with the watch: after the
// deploy the logs of the window before it may be gone with the old pods.
type savedState struct {
	Matches int            `json:"matches"`
	Window  watch.Duration `json:"window"`
	Error   string         `json:"error,omitempty"`
}

// SaveState returns what Before measured (null before it ran).
func (c *Checklist) SaveState() (json.RawMessage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.before == nil {
		return nil, nil
	}
	st := savedState{Matches: c.before.matches, Window: watch.Duration(c.before.window)}
	if c.before.err != nil {
		st.Error = c.before.err.Error()
	}
	return json.Marshal(st)
}

// RestoreState takes back what a previous process's Before measured.
func (c *Checklist) RestoreState(saved json.RawMessage) error {
	var st savedState
	if err := json.Unmarshal(saved, &st); err != nil {
		return err
	}
	lc := &logCount{matches: st.Matches, window: time.Duration(st.Window)}
	if st.Error != "" {
		lc.err = errors.New(st.Error)
	}
	c.mu.Lock()
	c.before = lc
	c.mu.Unlock()
	return nil
}

// Option tunes a Checklist.
type Option func(*Checklist)

// WithMetricsWait sets how long the metrics item waits for the metrics to
// flow. Default phases.verify: the new version may take a few scrapes to
// be seen.
func WithMetricsWait(d time.Duration) Option {
	return func(c *Checklist) {
		if c.metrics != nil {
			c.metrics.wait = d
		}
	}
}

// New prepares the checklist: the smoke suite is loaded (and checked) now.
// env looks up the suite's secrets.
func New(cfg *config.Config, src Sources, env func(string) (string, bool), opts ...Option) (*Checklist, error) {
	v := cfg.Verify
	c := &Checklist{v: v, logs: src.Logs, env: env, now: time.Now, poll: time.Second,
		client: &http.Client{Timeout: 10 * time.Second}}
	// The metrics item asks PromQL whether the targets are up; other
	// sources have no such question, and their checks say when no data
	// comes.
	if m := cfg.Metrics; m != nil && src.Metrics != nil && m.Language() == config.LanguagePromQL {
		c.metrics = &metricsItem{source: src.Metrics, selector: m.Selector, wait: cfg.Phases.Verify.D(), vars: src.Vars}
		if cfg.DefaultChecks {
			c.metrics.requests = m.RequestsMetric
		}
	}
	for _, o := range opts {
		o(c)
	}
	if v == nil {
		return c, nil
	}
	if v.Smoke != "" {
		s, err := smoke.LoadFile(cfg.Resolve(v.Smoke))
		if err != nil {
			return nil, err
		}
		c.suite = s
	}
	if v.Logs != nil {
		for _, p := range v.Logs.Patterns {
			c.patterns = append(c.patterns, regexp.MustCompile(p)) // validated at load
		}
		if v.Logs.Command != "" {
			c.logs = CommandLogs{Command: v.Logs.Command}
		}
	}
	return c, nil
}

// Before counts the error lines of the window before the deploy.
func (c *Checklist) Before(ctx context.Context, d watch.Deploy) {
	if c.v == nil || c.v.Logs == nil || c.logs == nil {
		return
	}
	w := c.v.Logs.Window.D()
	lines, err := c.logs.LogLines(ctx, d.StartedAt.Add(-w), d.StartedAt, false)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.before = &logCount{matches: len(c.match(lines)), window: w, err: err}
}

// Run runs the items in order, metrics, ready, version, smoke, logs, each
// when the one before it is taken: the engine stops at the first failure,
// the verify command takes them all.
func (c *Checklist) Run(ctx context.Context, d watch.Deploy) iter.Seq[watch.VerifyItem] {
	return func(yield func(watch.VerifyItem) bool) {
		if c.metrics != nil && !yield(c.metricsFlowing(ctx)) {
			return
		}
		if c.v == nil {
			return
		}
		for _, item := range []func() watch.VerifyItem{
			func() watch.VerifyItem { return c.ready(ctx) },
			func() watch.VerifyItem { return c.version(ctx, d) },
			func() watch.VerifyItem { return c.smoke(ctx) },
			func() watch.VerifyItem { return c.logScan(ctx, d) },
		} {
			if !yield(item()) {
				return
			}
		}
	}
}

func (c *Checklist) url(ref string) string {
	if strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://") {
		return ref
	}
	return strings.TrimSuffix(c.v.BaseURL, "/") + "/" + strings.TrimPrefix(ref, "/")
}

func skipped(name, why string) watch.VerifyItem {
	return watch.VerifyItem{Name: name, Outcome: watch.OutcomeSkipped, Evidence: why}
}

func failed(name, format string, args ...any) watch.VerifyItem {
	return watch.VerifyItem{Name: name, Outcome: watch.OutcomeFailed, Evidence: fmt.Sprintf(format, args...)}
}

func passed(name, format string, args ...any) watch.VerifyItem {
	return watch.VerifyItem{Name: name, Outcome: watch.OutcomePassed, Evidence: fmt.Sprintf(format, args...)}
}

// retry calls f until it succeeds or settle passes; it returns the last
// attempt's result.
func (c *Checklist) retry(ctx context.Context, f func() (ok bool)) {
	deadline := c.now().Add(c.v.Settle.D())
	for !f() && c.now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.poll):
		}
	}
}

// get fetches a URL: status, body (bounded) and an error for a request
// that could not be made.
func (c *Checklist) get(ctx context.Context, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("User-Agent", "deploywatch-verify")
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

func (c *Checklist) ready(ctx context.Context) watch.VerifyItem {
	if c.v.ReadyURL == "" {
		return skipped("ready", "no verify.ready_url")
	}
	u := c.url(c.v.ReadyURL)
	var item watch.VerifyItem
	c.retry(ctx, func() bool {
		code, body, err := c.get(ctx, u)
		switch {
		case err != nil:
			item = failed("ready", "GET %s: %v", u, err)
		case code != http.StatusOK:
			item = failed("ready", "GET %s answered %d: %s", u, code, snippet(body))
		default:
			var doc struct {
				Status *string `json:"status"`
			}
			if json.Unmarshal(body, &doc) == nil && doc.Status != nil && *doc.Status != "ready" && *doc.Status != "ok" {
				item = failed("ready", "GET %s answered 200 but status %q: %s", u, *doc.Status, snippet(body))
			} else {
				item = passed("ready", "GET %s answered 200 %s", u, snippet(body))
			}
		}
		return item.Outcome == watch.OutcomePassed
	})
	return item
}

func (c *Checklist) version(ctx context.Context, d watch.Deploy) watch.VerifyItem {
	switch {
	case c.v.InfoURL == "":
		return skipped("version", "no verify.info_url")
	case d.Version == "":
		return skipped("version", "no --version to compare with")
	}
	prog, err := jq.Compile(c.v.VersionField)
	if err != nil {
		return failed("version", "version_field %q: %v", c.v.VersionField, err)
	}
	u := c.url(c.v.InfoURL)
	var item watch.VerifyItem
	c.retry(ctx, func() bool {
		code, body, err := c.get(ctx, u)
		if err != nil || code != http.StatusOK {
			item = failed("version", "GET %s: %d %v %s", u, code, err, snippet(body))
			return false
		}
		var doc any
		if err := json.Unmarshal(body, &doc); err != nil {
			item = failed("version", "GET %s is not JSON: %s", u, snippet(body))
			return false
		}
		v, _, err := jq.First(ctx, prog, doc)
		if err != nil {
			item = failed("version", "version_field %q: %v", c.v.VersionField, err)
			return false
		}
		got, ok := v.(string)
		if !ok {
			b, _ := json.Marshal(v)
			got = string(b)
		}
		if got != d.Version {
			item = failed("version", "the service runs %s %s, but %s was deployed", c.v.VersionField, got, d.Version)
			return false
		}
		item = passed("version", "%s is %s", c.v.VersionField, got)
		return true
	})
	return item
}

func (c *Checklist) smoke(ctx context.Context) watch.VerifyItem {
	if c.suite == nil {
		return skipped("smoke", "no verify.smoke suite")
	}
	rep, err := c.suite.Run(ctx, smoke.Options{BaseURL: c.v.BaseURL, Env: c.env})
	if err != nil {
		return failed("smoke", "%v", err)
	}
	if rep.OK() {
		return passed("smoke", "%s", rep.Summary())
	}
	var why []string
	for _, r := range rep.Results {
		if !r.Passed {
			why = append(why, r.Name+": "+strings.Join(r.Reasons, "; "))
		}
	}
	return failed("smoke", "%s: %s", rep.Summary(), strings.Join(why, " | "))
}

// logScan counts error lines since the deploy and compares their rate with
// the window before it, so a service that always logs some errors is
// judged on the increase: it fails when an exact Poisson test is 99% sure
// the rate went up (with no errors before, any error line is new).
func (c *Checklist) logScan(ctx context.Context, d watch.Deploy) watch.VerifyItem {
	if c.v.Logs == nil {
		return skipped("logs", "no verify.logs")
	}
	if c.logs == nil {
		return skipped("logs", "no log source on this target")
	}
	now := c.now()
	lines, err := c.logs.LogLines(ctx, d.StartedAt, now, true)
	if err != nil {
		return skipped("logs", "the logs could not be read: "+err.Error())
	}
	hits := c.match(lines)
	c.mu.Lock()
	before := c.before
	c.mu.Unlock()
	after := now.Sub(d.StartedAt)
	if len(hits) == 0 {
		return passed("logs", "no error lines among %d since the deploy", len(lines))
	}
	sample := strings.Join(hits[:min(3, len(hits))], " | ")
	if before == nil || before.err != nil {
		return failed("logs", "%d error lines since the deploy (nothing to compare with before it): %s", len(hits), sample)
	}
	expected := float64(before.matches) / before.window.Seconds() * after.Seconds()
	if p := judge.PoissonAtLeast(float64(len(hits)), expected); p > 0.01 {
		return passed("logs", "%d error lines since the deploy, about as many as before it (%d in %s)", len(hits), before.matches, before.window)
	}
	return failed("logs", "%d error lines since the deploy against %d in the %s before it: %s", len(hits), before.matches, before.window, sample)
}

func (c *Checklist) match(lines []string) []string {
	var out []string
	for _, l := range lines {
		for _, p := range c.patterns {
			if p.MatchString(l) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

func snippet(b []byte) string { return textutil.Excerpt(b, 160) }

// CommandLogs runs a shell command and reads its output as log lines. The
// command gets DEPLOYWATCH_LOGS_SINCE and DEPLOYWATCH_LOGS_UNTIL (RFC 3339)
// to select its window, e.g.
// journalctl -u api --since "$DEPLOYWATCH_LOGS_SINCE" --until "$DEPLOYWATCH_LOGS_UNTIL".
type CommandLogs struct {
	Command string
}

// LogLines runs the command, bounded to a minute and 16 MiB of output.
func (l CommandLogs) LogLines(ctx context.Context, since, until time.Time, _ bool) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", l.Command)
	cmd.Env = append(os.Environ(),
		"DEPLOYWATCH_LOGS_SINCE="+since.UTC().Format(time.RFC3339),
		"DEPLOYWATCH_LOGS_UNTIL="+until.UTC().Format(time.RFC3339))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout = &limited{w: &out, n: 16 << 20}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("logs command: %w", err)
	}
	var lines []string
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}

type limited struct {
	w io.Writer
	n int
}

// Write keeps the first n bytes and discards the rest.
func (l *limited) Write(p []byte) (int, error) {
	n := len(p)
	if l.n <= 0 {
		return n, nil
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	l.n -= len(p)
	_, err := l.w.Write(p)
	return n, err
}
