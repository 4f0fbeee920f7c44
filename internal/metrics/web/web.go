// Package web is a metric source that asks a URL for each query and reads
// the value from its JSON answer with a jq expression: deploywatch's
// escape hatch for any HTTP API it does not speak, as Argo Rollouts' Web
// provider is.
//
// The request is GET <url>?query=<query>&time=<Unix seconds>. A value is
// not a count: checks on this source have no significance test.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/itchyny/gojq"

	"github.com/deploywatch/deploywatch/internal/jq"
	"github.com/deploywatch/deploywatch/internal/metrics"
	"github.com/deploywatch/deploywatch/internal/textutil"
)

// maxBody bounds how much of an answer is read.
const maxBody = 4 << 20

// Config is where to ask and how to read the answer.
type Config struct {
	URL string
	// Headers are sent with every request; BearerToken, when set, as
	// "Authorization: Bearer".
	Headers     map[string]string
	BearerToken string
	// Value is the jq expression of the value; Samples, optional, of the
	// number of observations behind it.
	Value, Samples string
	// Timeout bounds one request. Default 10s.
	Timeout   time.Duration
	Transport http.RoundTripper
}

// Source asks the URL. It is safe for concurrent use.
type Source struct {
	cfg            Config
	base           *url.URL
	value, samples *gojq.Code
	http           *http.Client
}

// New compiles the expressions and returns a source.
func New(cfg Config) (*Source, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("metrics.http.url %q: want http(s)://host[:port]/path", cfg.URL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	s := &Source{cfg: cfg, base: u, http: &http.Client{Transport: cfg.Transport}}
	if s.value, err = jq.Compile(cfg.Value); err != nil {
		return nil, fmt.Errorf("metrics.http.value: %w", err)
	}
	if cfg.Samples != "" {
		if s.samples, err = jq.Compile(cfg.Samples); err != nil {
			return nil, fmt.Errorf("metrics.http.samples: %w", err)
		}
	}
	return s, nil
}

// String names the source without its query string.
func (s *Source) String() string { return s.base.Scheme + "://" + s.base.Host + s.base.Path }

// Query asks the URL for expr as of at.
func (s *Source) Query(ctx context.Context, expr string, at time.Time) (metrics.Vector, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, s.cfg.Timeout, fmt.Errorf("%s took longer than %s", s, s.cfg.Timeout))
	defer cancel()
	u := *s.base
	q := u.Query()
	q.Set("query", expr)
	q.Set("time", strconv.FormatFloat(float64(at.UnixNano())/1e9, 'f', 3, 64))
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "deploywatch")
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	if s.cfg.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.BearerToken)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); ctx.Err() != nil && cause != nil {
			err = cause
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL holds the query; the source is named below
		}
		return nil, fmt.Errorf("asking %s: %w", s, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", s, err)
	}
	switch {
	case len(body) > maxBody:
		return nil, fmt.Errorf("%s answered more than %d bytes", s, maxBody)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("%w: %s answered HTTP %d", metrics.ErrSignIn, s, resp.StatusCode)
	case resp.StatusCode == http.StatusBadRequest:
		return nil, fmt.Errorf("%w: %s answered HTTP 400: %s", metrics.ErrBadQuery, s, s.quote(body))
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%s answered HTTP %d: %s", s, resp.StatusCode, s.quote(body))
	}
	var doc any
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s did not answer JSON: %w", s, err)
	}
	v, ok, err := s.run(ctx, s.value, doc)
	if err != nil || !ok {
		return nil, fmt.Errorf("metrics.http.value %q: %w", s.cfg.Value, err)
	}
	if v == nil {
		return nil, nil // no data
	}
	out := metrics.Sample{Labels: metrics.Labels{}, Value: *v, Time: at}
	if s.samples != nil {
		n, _, err := s.run(ctx, s.samples, doc)
		if err != nil {
			return nil, fmt.Errorf("metrics.http.samples %q: %w", s.cfg.Samples, err)
		}
		if n != nil {
			if *n < 0 || math.IsNaN(*n) || math.IsInf(*n, 0) {
				return nil, fmt.Errorf("metrics.http.samples %q gives %g: want a count, 0 or more", s.cfg.Samples, *n)
			}
			out.Count = *n
		}
	}
	return metrics.Vector{out}, nil
}

// run evaluates a compiled expression: its first output, a number (or a
// numeric string such as "NaN"), or null for no data.
func (s *Source) run(ctx context.Context, code *gojq.Code, doc any) (*float64, bool, error) {
	out, ok, err := jq.First(ctx, code, doc)
	switch {
	case err != nil:
		return nil, false, err
	case !ok:
		return nil, true, nil // no output: no data
	}
	var v float64
	switch x := out.(type) {
	case nil:
		return nil, true, nil
	case json.Number:
		v, err = strconv.ParseFloat(string(x), 64)
	case string:
		v, err = strconv.ParseFloat(x, 64)
	case float64:
		v = x
	case int:
		v = float64(x)
	case *big.Int:
		v, _ = new(big.Float).SetInt(x).Float64()
	default:
		return nil, false, fmt.Errorf("gives %T, want a number", out)
	}
	if err != nil {
		return nil, false, fmt.Errorf("gives %q, want a number", fmt.Sprint(out))
	}
	return &v, true, nil
}

// QueryRange is not offered: the URL answers for one moment.
func (s *Source) QueryRange(context.Context, string, time.Time, time.Time, time.Duration) (metrics.Matrix, error) {
	return nil, fmt.Errorf("%w: metrics.http answers for one moment, not a range", metrics.ErrUnsupported)
}

// quote is an answer as errors quote it, without the token a server may
// echo.
func (s *Source) quote(body []byte) string {
	return textutil.Excerpt([]byte(textutil.Redact(string(body), s.cfg.BearerToken)), 200)
}
