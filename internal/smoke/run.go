package smoke

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deploywatch/deploywatch/internal/jq"
	"github.com/deploywatch/deploywatch/internal/textutil"
)

// maxBody bounds how much of an answer is read and judged.
const maxBody = 4 << 20

// Result is one check's outcome.
type Result struct {
	Name   string `json:"name"`
	Method string `json:"method"`
	// URL is the request's address with secrets masked.
	URL      string        `json:"url"`
	Passed   bool          `json:"passed"`
	Status   int           `json:"status,omitempty"`
	Latency  time.Duration `json:"latency_ns"`
	Attempts int           `json:"attempts"`
	// Reasons say why it failed: what was expected and what came.
	Reasons []string `json:"reasons,omitempty"`
}

// Report is a whole suite run.
type Report struct {
	Results  []Result      `json:"results"`
	Passed   int           `json:"passed"`
	Failed   int           `json:"failed"`
	Duration time.Duration `json:"duration_ns"`
}

// OK reports whether every check passed.
func (r Report) OK() bool { return r.Failed == 0 && len(r.Results) > 0 }

// Options tune a run.
type Options struct {
	// BaseURL overrides the suite's base_url.
	BaseURL string
	// Env looks up the suite's env variables. Default os.LookupEnv.
	Env func(string) (string, bool)
	// Concurrency overrides the suite's; 1 runs the checks in order.
	Concurrency int
	// OnResult is called as each check ends (for live output).
	OnResult func(Result)
}

// run is one execution of a suite.
type run struct {
	s       *Suite
	base    *url.URL
	client  *http.Client
	noRedir *http.Client
	secrets []string
	env     map[string]string

	mu   sync.Mutex
	vars map[string]string
}

// Run executes the suite against the base URL. A request that cannot be
// made at all (refused, timed out, bad TLS) is a failed check.
func (s *Suite) Run(ctx context.Context, o Options) (Report, error) {
	start := time.Now()
	r, err := s.newRun(o)
	if err != nil {
		return Report{}, err
	}
	return s.runChecks(ctx, r, o, start), nil
}

// newRun prepares an execution: the base URL, the environment's values
// (secrets), the HTTP clients.
func (s *Suite) newRun(o Options) (*run, error) {
	base := o.BaseURL
	if base == "" {
		base = s.BaseURL
	}
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("base URL %q: want http(s)://host[:port][/prefix] (give --base-url or base_url)", base)
	}
	lookup := o.Env
	if lookup == nil {
		lookup = os.LookupEnv
	}
	r := &run{s: s, base: u, env: map[string]string{}, vars: map[string]string{}}
	for _, name := range s.Env {
		v, ok := lookup(name)
		if !ok {
			return nil, fmt.Errorf("environment variable %s (listed under env) is not set", name)
		}
		r.env[name] = v
		if v != "" {
			r.secrets = append(r.secrets, v)
		}
	}
	tr, err := s.transport()
	if err != nil {
		return nil, err
	}
	r.client = &http.Client{Transport: tr}
	r.noRedir = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return r, nil
}

func (s *Suite) runChecks(ctx context.Context, r *run, o Options, start time.Time) Report {
	conc := s.Concurrency
	if o.Concurrency > 0 {
		conc = o.Concurrency
	}
	results := make([]Result, len(s.Checks))
	done := map[string]chan struct{}{}
	passed := map[string]*bool{}
	for _, c := range s.Checks {
		done[c.Name] = make(chan struct{})
		passed[c.Name] = new(bool)
	}
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var cbMu sync.Mutex
	for i := range s.Checks {
		c := &s.Checks[i]
		wg.Go(func() {
			defer close(done[c.Name])
			for _, dep := range c.After {
				<-done[dep]
			}
			var res Result
			var failedDeps []string
			for _, dep := range c.After {
				if !*passed[dep] {
					failedDeps = append(failedDeps, dep)
				}
			}
			if len(failedDeps) > 0 {
				res = Result{Name: c.Name, Method: c.Method, URL: r.display(c.Path),
					Reasons: []string{"not run: it needs " + strings.Join(failedDeps, ", ") + ", which failed"}}
			} else {
				sem <- struct{}{}
				res = r.check(ctx, c)
				<-sem
			}
			*passed[c.Name] = res.Passed
			results[i] = res
			if o.OnResult != nil {
				cbMu.Lock()
				o.OnResult(res)
				cbMu.Unlock()
			}
		})
	}
	wg.Wait()
	rep := Report{Results: results, Duration: time.Since(start)}
	for _, res := range results {
		if res.Passed {
			rep.Passed++
		} else {
			rep.Failed++
		}
	}
	return rep
}

func (s *Suite) transport() (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.TLS.CAFile == "" && !s.TLS.InsecureSkipVerify {
		return tr, nil
	}
	tc := &tls.Config{InsecureSkipVerify: s.TLS.InsecureSkipVerify} //nolint:gosec // the user asked for it, for test environments
	if s.TLS.CAFile != "" {
		pem, err := os.ReadFile(s.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s holds no PEM certificate", s.TLS.CAFile)
		}
		tc.RootCAs = pool
	}
	tr.TLSClientConfig = tc
	return tr, nil
}

// expand substitutes ${name}; secret values are masked when display is set.
func (r *run) expand(text string, display bool) string {
	return varRE.ReplaceAllStringFunc(text, func(m string) string {
		name := varRE.FindStringSubmatch(m)[1]
		if v, ok := r.env[name]; ok {
			if display {
				return "***"
			}
			return v
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.vars[name]
	})
}

func (r *run) target(path string, display bool) string {
	p := r.expand(path, display)
	if strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://") {
		return p
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return r.base.String() + p
}

func (r *run) display(path string) string { return r.target(path, true) }

// redact removes secret values from text that may echo them (errors that
// quote the URL, bodies that echo a header).
func (r *run) redact(text string) string { return textutil.Redact(text, r.secrets...) }

// check runs one check, with its retries.
func (r *run) check(ctx context.Context, c *Check) Result {
	res := Result{Name: c.Name, Method: c.Method, URL: r.display(c.Path)}
	delay := c.Backoff.D()
	for attempt := 0; ; attempt++ {
		res.Attempts = attempt + 1
		res.Reasons, res.Status, res.Latency = nil, 0, 0
		r.attempt(ctx, c, &res)
		res.Passed = len(res.Reasons) == 0
		if res.Passed || attempt >= c.Retries || ctx.Err() != nil {
			return res
		}
		select {
		case <-ctx.Done():
			return res
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// request builds a check's request: its URL, body and headers, variables
// expanded.
func (r *run) request(ctx context.Context, c *Check) (*http.Request, error) {
	var body io.Reader
	if c.Body != "" {
		body = strings.NewReader(r.expand(c.Body, false))
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, r.target(c.Path, false), body)
	if err != nil {
		return nil, err
	}
	for k, v := range r.s.Headers {
		req.Header.Set(k, r.expand(v, false))
	}
	for k, v := range c.Headers {
		req.Header.Set(k, r.expand(v, false))
	}
	if c.Body != "" && req.Header.Get("Content-Type") == "" && json.Valid([]byte(c.Body)) {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "deploywatch-smoke")
	return req, nil
}

func (r *run) attempt(ctx context.Context, c *Check, res *Result) {
	fail := func(format string, args ...any) {
		res.Reasons = append(res.Reasons, r.redact(fmt.Sprintf(format, args...)))
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout.D())
	defer cancel()
	req, err := r.request(ctx, c)
	if err != nil {
		fail("cannot build the request: %v", err)
		return
	}
	client := r.noRedir
	if c.FollowRedirects {
		client = r.client
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		res.Latency = time.Since(start)
		if ctx.Err() != nil {
			fail("no answer within %s", c.Timeout.D())
			return
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		fail("the request failed: %v", err)
		return
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	res.Latency = time.Since(start)
	res.Status = resp.StatusCode
	if err != nil {
		fail("reading the answer: %v", err)
		return
	}
	want := c.Expect.Status
	if len(want) == 0 && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		fail("status %d, want 2xx%s", resp.StatusCode, redirectNote(resp))
	} else if len(want) > 0 && !slices.Contains(want, resp.StatusCode) {
		fail("status %d, want %s%s", resp.StatusCode, joinInts(want), redirectNote(resp))
	}
	if max := c.Expect.MaxLatency.D(); max > 0 && res.Latency > max {
		fail("answered in %s, want within %s", res.Latency.Round(time.Millisecond), max)
	}
	for h, re := range c.headers {
		if v := resp.Header.Get(h); !re.MatchString(v) {
			fail("header %s is %q, want it to match %q", h, v, re)
		}
	}
	for _, s := range c.Expect.Contains {
		if !bytes.Contains(data, []byte(s)) {
			fail("the body does not contain %q (body %s)", s, snippet(data))
		}
	}
	for _, re := range c.regex {
		if !re.Match(data) {
			fail("the body does not match %q (body %s)", re, snippet(data))
		}
	}
	if len(c.jq) == 0 && len(c.capture) == 0 {
		return
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		fail("the body is not JSON (%v): %s", err, snippet(data))
		return
	}
	for i, code := range c.jq {
		got, _, err := jq.First(ctx, code, doc)
		switch {
		case err != nil:
			fail("jq %s: %v", c.Expect.JQ[i], err)
		case got != true:
			fail("jq %s was %s, want true (body %s)", c.Expect.JQ[i], jsonText(got), snippet(data))
		}
	}
	for name, code := range c.capture {
		got, _, err := jq.First(ctx, code, doc)
		if err != nil || got == nil {
			fail("capture %s (%s): got %s", name, c.Capture[name], jsonText(got))
			continue
		}
		v, ok := got.(string)
		if !ok {
			v = jsonText(got)
		}
		r.mu.Lock()
		r.vars[name] = v
		r.mu.Unlock()
	}
}

func redirectNote(resp *http.Response) string {
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return " (a redirect to " + loc + "; set follow_redirects to follow it)"
	}
	return ""
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, " or ")
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func snippet(b []byte) string { return textutil.Excerpt(b, 160) }
