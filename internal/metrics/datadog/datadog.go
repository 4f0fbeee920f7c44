// Package datadog queries Datadog's metrics API (GET /api/v1/query) as a
// metric source.
//
// Datadog's queries name no time range: a check's query ends with the
// range in brackets, as in PromQL ("sum:trace.http.request.hits{service:api}.as_count()[5m]"),
// and the source asks Datadog for that span of time, ending at the moment
// the watch looks. A query ending in .as_count() is a count: its points
// are summed, so that the judge's exact tests apply to real numbers of
// events. Any other query is a value (a percentile, a gauge): its points
// are averaged, and the check says so.
//
// Datadog limits how often an organisation may query (X-RateLimit-*
// headers, HTTP 429). The client waits for the limit to reset when
// Datadog says it is spent, within a bound, and counts every such wait.
package datadog

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deploywatch/deploywatch/internal/metrics"
	"github.com/deploywatch/deploywatch/internal/textutil"
)

// maxBody bounds how much of an answer is read: a check's query returns
// a handful of series.
const maxBody = 16 << 20

// Config says how to reach Datadog. Keys are values here: the caller reads
// them from the environment or files.
type Config struct {
	// URL is the API's address: https://api.<site>, or a proxy's.
	URL            string
	APIKey, AppKey string
	// Timeout bounds one attempt. Default 10s.
	Timeout time.Duration
	// Retries is how many times a failed attempt is retried when retrying
	// can help (network errors, 5xx, 429). Default 0.
	Retries int
	// RateLimitWait bounds one wait for a rate limit to reset. Default 30s.
	RateLimitWait time.Duration
	// Transport overrides the HTTP transport (tests, proxies).
	Transport http.RoundTripper
	// Logger receives a line for each rate-limit wait. Default: none.
	Logger *slog.Logger
}

// SiteURL is the API address of a Datadog site (datadoghq.com, datadoghq.eu, ...).
func SiteURL(site string) string { return "https://api." + site }

// Client queries Datadog. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base *url.URL
	http *http.Client
	log  *slog.Logger

	mu sync.Mutex
	// exhaustedUntil is when the spent rate limit resets.
	exhaustedUntil time.Time
	limited        atomic.Int64
}

// New checks the configuration and returns a client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("datadog url %q: want http(s)://host[:port]", cfg.URL)
	}
	if cfg.APIKey == "" || cfg.AppKey == "" {
		return nil, errors.New("datadog: the metrics API needs an API key and an application key")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.RateLimitWait <= 0 {
		cfg.RateLimitWait = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{cfg: cfg, base: u, http: &http.Client{Transport: cfg.Transport}, log: log}, nil
}

// String names the API; it never holds keys.
func (c *Client) String() string { return c.base.String() }

// RateLimited counts the queries that met a spent rate limit (a 429, or
// a wait for the limit to reset).
func (c *Client) RateLimited() int64 { return c.limited.Load() }

// Validate asks Datadog whether the API key is valid (GET /api/v1/validate)
// and runs one query, which needs the application key too.
func (c *Client) Validate(ctx context.Context) error {
	body, err := c.call(ctx, "/api/v1/validate", nil)
	if err != nil {
		return err
	}
	var v struct {
		Valid bool `json:"valid"`
	}
	if err := json.Unmarshal(body, &v); err != nil || !v.Valid {
		return fmt.Errorf("%w: %s says the API key is not valid", metrics.ErrSignIn, c)
	}
	_, err = c.Query(ctx, "avg:datadog.agent.running{*}[1m]", time.Now())
	return err
}

// Query runs expr (a Datadog query followed by its range in brackets) over
// the range that ends at at, and reduces each series to one value: the
// sum of its points for a count (.as_count()), else their mean.
func (c *Client) Query(ctx context.Context, expr string, at time.Time) (metrics.Vector, error) {
	q, rng, err := metrics.SplitRange(expr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", metrics.ErrBadQuery, err)
	}
	from, to := at.Add(-rng), at
	params := url.Values{
		"query": {q},
		"from":  {strconv.FormatInt(from.Unix(), 10)},
		// Datadog's range is whole seconds; a range under a second is one.
		"to": {strconv.FormatInt(max(to.Unix(), from.Unix()+1), 10)},
	}
	body, err := c.call(ctx, "/api/v1/query", params)
	if err != nil {
		return nil, err
	}
	return decode(body, strings.Contains(q, ".as_count()"), c.cfg.APIKey, c.cfg.AppKey)
}

// QueryRange is not offered: the checks' queries carry their own range.
func (c *Client) QueryRange(context.Context, string, time.Time, time.Time, time.Duration) (metrics.Matrix, error) {
	return nil, fmt.Errorf("%w: range queries (Datadog queries carry their range in brackets)", metrics.ErrUnsupported)
}

// answer is the body of GET /api/v1/query.
type answer struct {
	Status string   `json:"status"`
	Error  string   `json:"error"`
	Errors []string `json:"errors"`
	Series []struct {
		Metric    string          `json:"metric"`
		Scope     string          `json:"scope"`
		TagSet    []string        `json:"tag_set"`
		PointList [][2]*float64   `json:"pointlist"`
		Unit      json.RawMessage `json:"unit"`
	} `json:"series"`
}

func decode(body []byte, count bool, secrets ...string) (metrics.Vector, error) {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("the answer is not Datadog's query API: %w", err)
	}
	if a.Status == "error" || a.Error != "" {
		return nil, fmt.Errorf("%w: %s", metrics.ErrBadQuery, textutil.Truncate(textutil.Redact(cmp.Or(a.Error, strings.Join(a.Errors, "; "), "status error"), secrets...), 300))
	}
	out := make(metrics.Vector, 0, len(a.Series))
	for _, s := range a.Series {
		sum, n := 0.0, 0
		var last time.Time
		for _, p := range s.PointList {
			if p[0] == nil || p[1] == nil || math.IsNaN(*p[1]) {
				continue // a gap: Datadog writes null where nothing was sent
			}
			sum += *p[1]
			n++
			last = time.UnixMilli(int64(*p[0])).UTC()
		}
		if n == 0 {
			continue // a series with no point is no data, not zero
		}
		v := sum
		if !count {
			v = sum / float64(n)
		}
		labels := metrics.Labels{"__name__": s.Metric}
		for _, t := range s.TagSet {
			k, val, _ := strings.Cut(t, ":")
			labels[k] = val
		}
		out = append(out, metrics.Sample{Labels: labels, Value: v, Time: last})
	}
	return out, nil
}

// retryError marks a failure that a later attempt may not have.
type retryError struct {
	err  error
	wait time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// call GETs path with params, retrying what retrying can fix and waiting
// out a spent rate limit.
func (c *Client) call(ctx context.Context, path string, params url.Values) ([]byte, error) {
	delay := 200 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if err := c.waitForLimit(ctx); err != nil {
			return nil, err
		}
		body, err := c.attempt(ctx, path, params)
		var re *retryError
		if err == nil || !errors.As(err, &re) || attempt >= c.cfg.Retries || ctx.Err() != nil {
			return body, err
		}
		wait := max(re.wait, delay+rand.N(delay/2+1))
		if wait > c.cfg.RateLimitWait {
			return nil, err // the limit resets too late to help this look
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

// waitForLimit waits until a rate limit Datadog said is spent resets, when
// that is within the bound.
func (c *Client) waitForLimit(ctx context.Context) error {
	c.mu.Lock()
	wait := time.Until(c.exhaustedUntil)
	c.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	c.limited.Add(1)
	if wait > c.cfg.RateLimitWait {
		return fmt.Errorf("datadog's rate limit is spent for another %s", wait.Round(time.Second))
	}
	c.log.Warn("waiting for Datadog's rate limit to reset", "wait", wait.Round(time.Millisecond), "rate_limited", c.limited.Load())
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// noteLimit records the rate-limit headers of an answer.
func (c *Client) noteLimit(h http.Header, status int) time.Duration {
	reset, err := strconv.Atoi(h.Get("X-RateLimit-Reset"))
	if err != nil || reset < 0 {
		reset = 0
	}
	wait := time.Duration(min(reset, 3600)) * time.Second
	remaining, err := strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	spent := status == http.StatusTooManyRequests || err == nil && remaining <= 0
	if spent {
		if status == http.StatusTooManyRequests {
			c.limited.Add(1)
			c.log.Warn("Datadog's rate limit is spent", "reset_in", wait, "rate_limited", c.limited.Load())
		}
		if wait == 0 {
			wait = time.Second
		}
		c.mu.Lock()
		c.exhaustedUntil = time.Now().Add(wait)
		c.mu.Unlock()
	}
	return wait
}

func (c *Client) attempt(ctx context.Context, path string, params url.Values) ([]byte, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.cfg.Timeout, fmt.Errorf("datadog query took longer than %s", c.cfg.Timeout))
	defer cancel()
	u := *c.base
	u.Path += path
	u.RawQuery = params.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "deploywatch")
	req.Header.Set("DD-API-KEY", c.cfg.APIKey)
	req.Header.Set("DD-APPLICATION-KEY", c.cfg.AppKey)
	resp, err := c.http.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = cause
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("%s: %w", ue.Op, ue.Err) // the URL carries the query, not secrets, but is long
		}
		return nil, &retryError{err: fmt.Errorf("querying %s: %w", c, err)}
	}
	defer resp.Body.Close()
	wait := c.noteLimit(resp.Header, resp.StatusCode)
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, &retryError{err: fmt.Errorf("reading answer from %s: %w", c, err)}
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("answer from %s exceeds %d bytes", c, maxBody)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return body, nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("%w: %s answered HTTP %d: %s", metrics.ErrSignIn, c, resp.StatusCode, c.reason(body))
	case resp.StatusCode == http.StatusBadRequest:
		return nil, fmt.Errorf("%w: %s answered HTTP 400: %s", metrics.ErrBadQuery, c, c.reason(body))
	case resp.StatusCode == http.StatusTooManyRequests:
		return nil, &retryError{err: fmt.Errorf("%s: rate limit spent (HTTP 429), resets in %s", c, wait), wait: wait}
	case resp.StatusCode >= 500:
		return nil, &retryError{err: fmt.Errorf("%s answered HTTP %d: %s", c, resp.StatusCode, c.reason(body))}
	}
	return nil, fmt.Errorf("%s answered HTTP %d: %s", c, resp.StatusCode, c.reason(body))
}

// reason is what an error answer says, without the keys a hostile server
// may echo: its errors list, or a short quote.
func (c *Client) reason(body []byte) string {
	body = []byte(textutil.Redact(string(body), c.cfg.APIKey, c.cfg.AppKey))
	var e struct {
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(body, &e) == nil && len(e.Errors) > 0 {
		return textutil.Truncate(strings.Join(e.Errors, "; "), 300)
	}
	return textutil.Excerpt(body, 200)
}
