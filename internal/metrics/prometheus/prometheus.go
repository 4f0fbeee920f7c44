// Package prometheus queries a Prometheus-compatible server through its
// HTTP API (/api/v1/query and /api/v1/query_range).
//
// It speaks the API directly rather than through client_golang's api
// package: the API is two endpoints, and owning the decoding lets every
// edge be explicit: values arrive as strings ("NaN", "+Inf"), an empty
// result is no data, a 400 or 422 is a query that retrying cannot fix, and a
// hostile or broken server cannot make the client read an unbounded body.
package prometheus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/deploywatch/deploywatch/internal/metrics"
	"github.com/deploywatch/deploywatch/internal/textutil"
)

// maxBody bounds how much of a response is read. Deploy checks return a
// handful of series; a 32 MiB answer is a misconfigured query or a broken
// server, not data.
const maxBody = 32 << 20

// Config says how to reach a server. Secrets are values here: the caller
// reads them from the environment or files.
type Config struct {
	// URL is the server's base address, e.g. http://prometheus:9090 (a path
	// prefix such as /prometheus is kept).
	URL string
	// BearerToken, when set, is sent as "Authorization: Bearer".
	BearerToken string
	// Username and Password, when Username is set, are sent as basic auth.
	Username, Password string
	// Headers are added to every request (e.g. X-Scope-OrgID for Mimir).
	Headers map[string]string
	// Timeout bounds one attempt, and is passed to the server as its
	// query timeout. Default 10s.
	Timeout time.Duration
	// Retries is how many times a failed attempt is retried when retrying
	// can help (network errors, 429, 5xx). Default 0.
	Retries int
	// Backoff is the first retry's delay; each retry doubles it, with
	// jitter. Default 200ms.
	Backoff time.Duration
	// Transport overrides the HTTP transport (tests, proxies).
	Transport http.RoundTripper
}

// Client queries one server. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base *url.URL
	http *http.Client
}

// New checks the configuration and returns a client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("prometheus url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("prometheus url %q: want http(s)://host[:port][/prefix]", u.Redacted())
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 200 * time.Millisecond
	}
	if u.User != nil {
		// Credentials in the URL become basic auth, and leave the URL so that
		// no error or log line that names the server can carry them.
		if cfg.Username == "" && cfg.BearerToken == "" {
			cfg.Username = u.User.Username()
			cfg.Password, _ = u.User.Password()
		}
		u.User = nil
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{cfg: cfg, base: u, http: &http.Client{Transport: cfg.Transport}}, nil
}

// String names the server; it never holds credentials.
func (c *Client) String() string { return c.base.String() }

// Query evaluates expr at time at.
func (c *Client) Query(ctx context.Context, expr string, at time.Time) (metrics.Vector, error) {
	form := url.Values{"query": {expr}, "time": {formatTime(at)}}
	data, err := c.call(ctx, "/api/v1/query", form)
	if err != nil {
		return nil, err
	}
	return decodeVector(data)
}

// QueryRange evaluates expr from start to end every step.
func (c *Client) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (metrics.Matrix, error) {
	if step <= 0 {
		return nil, fmt.Errorf("range query step %s must be positive", step)
	}
	form := url.Values{
		"query": {expr}, "start": {formatTime(start)}, "end": {formatTime(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	data, err := c.call(ctx, "/api/v1/query_range", form)
	if err != nil {
		return nil, err
	}
	return decodeMatrix(data)
}

// Probe asks the server the simplest query, to learn whether it answers
// and accepts the credentials.
// It takes at most one query timeout: a server that does not answer is
// the watch's to deal with, not Start's.
func (c *Client) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	_, err := c.Query(ctx, "1", time.Now())
	return err
}

// call POSTs the form (queries can be longer than a URL may be) and
// returns the envelope's data, retrying what retrying can fix.
func (c *Client) call(ctx context.Context, path string, form url.Values) (json.RawMessage, error) {
	form.Set("timeout", strconv.FormatFloat(c.cfg.Timeout.Seconds(), 'f', -1, 64)+"s")
	delay := c.cfg.Backoff
	for attempt := 0; ; attempt++ {
		data, retryAfter, err := c.attempt(ctx, path, form)
		if err == nil || attempt >= c.cfg.Retries || !retryable(err) || ctx.Err() != nil {
			return data, err
		}
		wait := delay + rand.N(delay/2+1)
		if retryAfter > wait {
			wait = retryAfter
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		delay *= 2
	}
}

// retryError marks a failure that a later attempt may not have.
type retryError struct{ err error }

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

func retryable(err error) bool {
	var r *retryError
	return errors.As(err, &r)
}

type envelope struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

func (c *Client) attempt(ctx context.Context, path string, form url.Values) (json.RawMessage, time.Duration, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.cfg.Timeout,
		fmt.Errorf("prometheus query took longer than %s", c.cfg.Timeout))
	defer cancel()
	u := *c.base
	u.Path += path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, 0, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "deploywatch")
	for k, v := range c.cfg.Headers {
		req.Header.Set(k, v)
	}
	switch {
	case c.cfg.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+c.cfg.BearerToken)
	case c.cfg.Username != "":
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = cause
		}
		return nil, 0, &retryError{fmt.Errorf("querying %s: %w", c, redact(err))}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, 0, &retryError{fmt.Errorf("reading answer from %s: %w", c, err)}
	}
	if len(body) > maxBody {
		return nil, 0, fmt.Errorf("answer from %s exceeds %d bytes", c, maxBody)
	}
	var env envelope
	jsonErr := json.Unmarshal(body, &env)
	switch {
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnprocessableEntity:
		msg := c.scrub(env.Error)
		if jsonErr != nil || msg == "" {
			msg = c.quote(body)
		}
		return nil, 0, fmt.Errorf("%w: %s (HTTP %d): %s", metrics.ErrBadQuery, c, resp.StatusCode, msg)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, 0, fmt.Errorf("%w: %s answered HTTP %d: %s", metrics.ErrSignIn, c, resp.StatusCode, c.quote(body))
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		msg := c.scrub(env.Error)
		if msg == "" {
			msg = c.quote(body)
		}
		return nil, retryAfter(resp), &retryError{fmt.Errorf("%s answered HTTP %d: %s", c, resp.StatusCode, msg)}
	case resp.StatusCode != http.StatusOK:
		return nil, 0, fmt.Errorf("%s answered HTTP %d: %s", c, resp.StatusCode, c.quote(body))
	case jsonErr != nil:
		return nil, 0, fmt.Errorf("%s answered with something that is not the Prometheus API: %w (%s)", c, jsonErr, c.quote(body))
	case env.Status != "success":
		return nil, 0, fmt.Errorf("%s answered status %q: %s %s", c, env.Status, c.scrub(env.ErrorType), c.scrub(env.Error))
	}
	return env.Data, 0, nil
}

// scrub removes the client's credentials from what a server said: a
// broken or hostile server may echo the Authorization header it got.
func (c *Client) scrub(s string) string {
	return textutil.Redact(s, c.cfg.BearerToken, c.cfg.Password)
}

// quote is an answer's body as errors quote it, without credentials.
func (c *Client) quote(body []byte) string { return snippet([]byte(c.scrub(string(body)))) }

func retryAfter(resp *http.Response) time.Duration {
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, time.Minute)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), time.Minute)
	}
	return 0
}

// redact drops the URL from a transport error: the standard library strips
// only the password from it, and the caller already names the server in
// its redacted form.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return strconv.Quote(s)
}

func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', 3, 64)
}

type sampleJSON struct {
	Metric metrics.Labels     `json:"metric"`
	Value  [2]json.RawMessage `json:"value"`
}

type seriesJSON struct {
	Metric metrics.Labels       `json:"metric"`
	Values [][2]json.RawMessage `json:"values"`
}

type resultJSON struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

func decodeVector(data json.RawMessage) (metrics.Vector, error) {
	var r resultJSON
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decoding query result: %w", err)
	}
	switch r.ResultType {
	case "vector":
		var raw []sampleJSON
		if err := json.Unmarshal(r.Result, &raw); err != nil {
			return nil, fmt.Errorf("decoding vector: %w", err)
		}
		out := make(metrics.Vector, 0, len(raw))
		for _, s := range raw {
			p, err := decodePoint(s.Value)
			if err != nil {
				return nil, fmt.Errorf("series %s: %w", s.Metric, err)
			}
			out = append(out, metrics.Sample{Labels: s.Metric, Value: p.Value, Time: p.Time})
		}
		return out, nil
	case "scalar":
		var raw [2]json.RawMessage
		if err := json.Unmarshal(r.Result, &raw); err != nil {
			return nil, fmt.Errorf("decoding scalar: %w", err)
		}
		p, err := decodePoint(raw)
		if err != nil {
			return nil, fmt.Errorf("scalar: %w", err)
		}
		return metrics.Vector{{Labels: metrics.Labels{}, Value: p.Value, Time: p.Time}}, nil
	default:
		return nil, fmt.Errorf("%w: the query returns a %s, want an instant vector or scalar", metrics.ErrBadQuery, r.ResultType)
	}
}

func decodeMatrix(data json.RawMessage) (metrics.Matrix, error) {
	var r resultJSON
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decoding query result: %w", err)
	}
	if r.ResultType != "matrix" {
		return nil, fmt.Errorf("range query returned a %s, want a matrix", r.ResultType)
	}
	var raw []seriesJSON
	if err := json.Unmarshal(r.Result, &raw); err != nil {
		return nil, fmt.Errorf("decoding matrix: %w", err)
	}
	out := make(metrics.Matrix, 0, len(raw))
	for _, s := range raw {
		series := metrics.Series{Labels: s.Metric, Points: make([]metrics.Point, 0, len(s.Values))}
		for _, v := range s.Values {
			p, err := decodePoint(v)
			if err != nil {
				return nil, fmt.Errorf("series %s: %w", s.Metric, err)
			}
			series.Points = append(series.Points, p)
		}
		out = append(out, series)
	}
	return out, nil
}

// decodePoint decodes [<unix seconds>, "<value>"]; the value is a string so
// that NaN and ±Inf survive JSON.
func decodePoint(raw [2]json.RawMessage) (metrics.Point, error) {
	var ts float64
	if err := json.Unmarshal(raw[0], &ts); err != nil {
		return metrics.Point{}, fmt.Errorf("timestamp %s: %w", raw[0], err)
	}
	var s string
	if err := json.Unmarshal(raw[1], &s); err != nil {
		return metrics.Point{}, fmt.Errorf("value %s is not a string: %w", raw[1], err)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return metrics.Point{}, fmt.Errorf("value %q: %w", s, err)
	}
	sec := int64(ts)
	return metrics.Point{Time: time.Unix(sec, int64((ts-float64(sec))*1e9)).UTC(), Value: v}, nil
}
