package datadog

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/metrics"
	"github.com/deploywatch/deploywatch/internal/testenv"
)

const apiKey, appKey = "dd-api-key-0123", "dd-app-key-4567"

func newClient(t *testing.T, url string, mod ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{URL: url, APIKey: apiKey, AppKey: appKey, Timeout: 5 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestQuerySumsCountsAndAveragesValues(t *testing.T) {
	dd := testenv.StartDatadog(t, apiKey, appKey)
	now := time.Now().Truncate(time.Second)
	v2 := []string{"service:api", "env:prod", "version:v2"}
	v1 := []string{"service:api", "env:prod", "version:v1"}
	for i := range 10 {
		at := now.Add(-time.Duration(9-i) * time.Second)
		dd.Add("trace.http.request.hits", v2, at, 100)
		dd.Add("trace.http.request.errors", v2, at, 3)
		dd.Add("trace.http.request.hits", v1, at, 50)
		dd.Add("trace.http.request", v2, at, 0.1*float64(i+1))
	}
	c := newClient(t, dd.URL)
	cases := []struct {
		name, expr string
		want       float64
		empty      bool
	}{
		{"a count sums its points", "sum:trace.http.request.hits{service:api,env:prod,version:v2}.as_count()[5s]", 600, false}, // the 6 points in [now-5s, now]
		{"errors the same way", "sum:trace.http.request.errors{service:api,env:prod,version:v2}.as_count()[10s]", 30, false},
		{"version:* is any version", "sum:trace.http.request.hits{service:api,version:*}.as_count()[2s]", 450, false},
		{"a value is averaged", "p99:trace.http.request{service:api,version:v2}[3s]", (0.7 + 0.8 + 0.9 + 1.0) / 4, false},
		{"no series is no data", "sum:trace.http.request.hits{service:web}.as_count()[10s]", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vec, err := c.Query(context.Background(), tc.expr, now)
			if err != nil {
				t.Fatal(err)
			}
			if tc.empty {
				if len(vec) != 0 {
					t.Fatalf("got %v, want no data", vec)
				}
				return
			}
			if len(vec) != 1 || math.Abs(vec[0].Value-tc.want) > 1e-9 {
				t.Fatalf("got %+v, want one value %g", vec, tc.want)
			}
		})
	}
	if v := dd.Violations(); len(v) > 0 {
		t.Errorf("requests broke the documented API: %v", v)
	}
}

// TestRecordedAnswers decodes answers in the shapes Datadog gives: nulls
// in the point list, units, grouped series, and both kinds of error.
func TestRecordedAnswers(t *testing.T) {
	cases := []struct {
		file   string
		status int
		count  bool
		want   []float64
		err    error
		errHas string
	}{
		{file: "counts.json", status: 200, count: true, want: []float64{512 + 498 + 505 + 1000 + 485 + 0}},
		{file: "grouped.json", status: 200, want: []float64{0.13}}, // the all-null series is no data
		{file: "parse-error.json", status: 400, err: metrics.ErrBadQuery, errHas: "Rule 'scope_expr' didn't match"},
		{file: "status-error.json", status: 200, err: metrics.ErrBadQuery, errHas: "Unknown function 'as_cont'"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write(body)
			}))
			defer srv.Close()
			q := "sum:trace.http.request.hits{service:api}[1m]"
			if tc.count {
				q = "sum:trace.http.request.hits{service:api}.as_count()[1m]"
			}
			vec, err := newClient(t, srv.URL).Query(context.Background(), q, time.Now())
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("got %v, want %v saying %q", err, tc.err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(vec) != len(tc.want) {
				t.Fatalf("got %d series, want %d: %+v", len(vec), len(tc.want), vec)
			}
			for i, w := range tc.want {
				if math.Abs(vec[i].Value-w) > 1e-9 {
					t.Errorf("series %d: %g, want %g", i, vec[i].Value, w)
				}
			}
			if tc.file == "grouped.json" && vec[0].Labels["version"] != "v1" {
				t.Errorf("labels %v, want the tag set", vec[0].Labels)
			}
		})
	}
}

// TestSiteAndKeys: a site's requests go to its API host, with both keys
// as headers and the documented parameters; wrong keys are a sign-in
// error, not a query error.
func TestSiteAndKeys(t *testing.T) {
	dd := testenv.StartDatadog(t, apiKey, appKey)
	target, _ := url.Parse(dd.URL)
	var mu sync.Mutex
	var hosts []string
	rewrite := roundTripper(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		hosts = append(hosts, r.URL.Scheme+"://"+r.URL.Host)
		mu.Unlock()
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host = target.Scheme, target.Host
		return http.DefaultTransport.RoundTrip(r)
	})
	c := newClient(t, SiteURL("datadoghq.eu"), func(c *Config) { c.Transport = rewrite })
	if err := c.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 2 || hosts[0] != "https://api.datadoghq.eu" {
		t.Errorf("requests went to %v, want https://api.datadoghq.eu", hosts)
	}
	for _, tc := range []struct{ name, api, app string }{{"wrong API key", "nope", appKey}, {"wrong application key", apiKey, "nope"}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, dd.URL, func(c *Config) { c.APIKey, c.AppKey = tc.api, tc.app })
			err := c.Validate(context.Background())
			if !errors.Is(err, metrics.ErrSignIn) || !strings.Contains(err.Error(), "403") {
				t.Fatalf("got %v, want a sign-in error", err)
			}
			if strings.Contains(err.Error(), "nope") || strings.Contains(err.Error(), apiKey) {
				t.Error("the error shows a key")
			}
		})
	}
	if _, err := c.Query(context.Background(), "sum:trace.http.request.hits{service:api}.as_count()", time.Now()); !errors.Is(err, metrics.ErrBadQuery) {
		t.Errorf("a query without its range: %v, want a query error", err)
	}
	if v := dd.Violations(); len(v) > 0 {
		t.Errorf("requests broke the documented API: %v", v)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestRateLimit: a spent limit is waited out when it resets soon, and
// counted; one that resets too late fails the query at once.
func TestRateLimit(t *testing.T) {
	dd := testenv.StartDatadog(t, apiKey, appKey)
	dd.Add("trace.http.request.hits", []string{"service:api"}, time.Now(), 1)
	q := "sum:trace.http.request.hits{service:api}.as_count()[1m]"

	dd.Limit(2, 2*time.Second)
	c := newClient(t, dd.URL, func(c *Config) { c.Retries = 2; c.RateLimitWait = 5 * time.Second })
	for i := range 4 {
		if _, err := c.Query(context.Background(), q, time.Now()); err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
	}
	if c.RateLimited() == 0 {
		t.Error("the rate limit was met but not counted")
	}

	dd.Limit(1, time.Hour)
	c = newClient(t, dd.URL, func(c *Config) { c.Retries = 2; c.RateLimitWait = time.Second })
	if _, err := c.Query(context.Background(), q, time.Now()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := c.Query(context.Background(), q, time.Now())
	if err == nil || !strings.Contains(err.Error(), "rate limit") {
		t.Fatalf("got %v, want the rate limit named", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a limit that resets in an hour held the query %s", took)
	}
	if v := dd.Violations(); len(v) > 0 {
		t.Errorf("requests broke the documented API: %v", v)
	}
}

// TestQuotedAnswersKeepNoPartOfAKey: an echoed key straddling where a quote
// is cut is redacted before the cut, so not even its first half is left.
func TestQuotedAnswersKeepNoPartOfAKey(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1")
	for _, body := range []string{
		strings.Repeat("x", 190) + apiKey + strings.Repeat("y", 200),
		`{"errors":["` + strings.Repeat("x", 290) + appKey + `"]}`,
	} {
		got := c.reason([]byte(body))
		if strings.Contains(got, apiKey[:6]) || strings.Contains(got, appKey[:6]) {
			t.Errorf("part of a key survives: %s", got)
		}
	}
}
