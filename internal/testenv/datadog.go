package testenv

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Datadog is a loopback Datadog metrics API: GET /api/v1/query and GET
// /api/v1/validate as Datadog documents them. It checks every request
// against the documented contract (path, method, from and to in Unix
// seconds, the query, both keys as headers) and answers in the shape of
// Datadog's recorded answers, with its rate-limit headers. Points are
// added by the test, or by Follow, which plays the agent and the tracer
// for a test service.
type Datadog struct {
	URL            string
	APIKey, AppKey string

	mu     sync.Mutex
	points map[string]*ddSeries
	// limit is how many queries a period allows (0: no limit).
	limit, used int
	period      time.Duration
	periodStart time.Time
	queries     int
	violations  []string
	// flushes counts Follow's flushes; flushed is closed and replaced at
	// each one.
	flushes int
	flushed chan struct{}
}

type ddSeries struct {
	metric string
	tags   []string
	points []ddPoint
}

type ddPoint struct {
	at time.Time
	v  float64
}

// StartDatadog serves the API until the test ends.
func StartDatadog(tb testing.TB, apiKey, appKey string) *Datadog {
	tb.Helper()
	d := &Datadog{APIKey: apiKey, AppKey: appKey, points: map[string]*ddSeries{}, period: time.Hour, flushed: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(d.serve))
	tb.Cleanup(srv.Close)
	d.URL = srv.URL
	return d
}

// Limit allows n queries a period, as Datadog's per-organisation limit
// does (1,600 an hour for the query API).
func (d *Datadog) Limit(n int, period time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.limit, d.period, d.used, d.periodStart = n, period, 0, time.Now()
}

// Queries counts the queries answered (refused ones included).
func (d *Datadog) Queries() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries
}

// Violations lists the requests that broke the documented contract.
func (d *Datadog) Violations() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.violations)
}

// Add records one point of a metric with its tags ("service:api").
func (d *Datadog) Add(metric string, tags []string, at time.Time, v float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	tags = slices.Sorted(slices.Values(tags))
	key := metric + "{" + strings.Join(tags, ",") + "}"
	s := d.points[key]
	if s == nil {
		s = &ddSeries{metric: metric, tags: tags}
		d.points[key] = s
	}
	s.points = append(s.points, ddPoint{at, v})
}

func (d *Datadog) violate(w http.ResponseWriter, status int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.mu.Lock()
	d.violations = append(d.violations, msg)
	d.mu.Unlock()
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string][]string{"errors": {msg}})
}

func (d *Datadog) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodGet {
		d.violate(w, http.StatusMethodNotAllowed, "%s %s: the query API is GET", r.Method, r.URL.Path)
		return
	}
	switch r.URL.Path {
	case "/api/v1/validate":
		if r.Header.Get("DD-API-KEY") != d.APIKey {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"errors":["Forbidden"]}`)
			return
		}
		fmt.Fprint(w, `{"valid":true}`)
	case "/api/v1/query":
		d.query(w, r)
	default:
		d.violate(w, http.StatusNotFound, "no such endpoint %s", r.URL.Path)
	}
}

// ddQuery is the part of Datadog's query grammar the checks use:
// <aggregation>:<metric>{<tags>}[.as_count()|.as_rate()].
var ddQuery = regexp.MustCompile(`^(sum|avg|max|min|p50|p75|p90|p95|p99):([a-zA-Z0-9_.]+)\{([^{}]*)\}(\.as_count\(\)|\.as_rate\(\))?$`)

func (d *Datadog) query(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.queries++
	if d.limit > 0 && time.Since(d.periodStart) > d.period {
		d.used, d.periodStart = 0, time.Now()
	}
	d.used++
	remaining, reset := d.limit-d.used, d.period-time.Since(d.periodStart)
	limited := d.limit > 0 && remaining < 0
	d.mu.Unlock()
	if d.limit > 0 {
		w.Header().Set("X-RateLimit-Limit", strconv.Itoa(d.limit))
		w.Header().Set("X-RateLimit-Period", strconv.Itoa(int(d.period.Seconds())))
		w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(max(remaining, 0)))
		w.Header().Set("X-RateLimit-Reset", strconv.Itoa(int(math.Ceil(reset.Seconds()))))
		w.Header().Set("X-RateLimit-Name", "query")
	}
	if r.Header.Get("DD-API-KEY") != d.APIKey || r.Header.Get("DD-APPLICATION-KEY") != d.AppKey {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"errors":["Forbidden"]}`)
		return
	}
	if limited {
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"errors":["Too many requests"]}`)
		return
	}
	q := r.URL.Query()
	from, errFrom := strconv.ParseInt(q.Get("from"), 10, 64)
	to, errTo := strconv.ParseInt(q.Get("to"), 10, 64)
	if errFrom != nil || errTo != nil || from >= to {
		d.violate(w, http.StatusBadRequest, "from %q and to %q must be Unix seconds, from before to", q.Get("from"), q.Get("to"))
		return
	}
	m := ddQuery.FindStringSubmatch(q.Get("query"))
	if m == nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"errors":["Error parsing query: \n unable to parse %s: Rule 'scope_expr' didn't match"]}`, strconv.Quote(q.Get("query")))
		return
	}
	// m[4], .as_count() or .as_rate(), changes nothing here: the fake
	// flushes every second, so a count per point is also a rate.
	aggr, metric, scope := m[1], m[2], m[3]
	var want []string
	for t := range strings.SplitSeq(scope, ",") {
		if t = strings.TrimSpace(t); t != "" && t != "*" {
			want = append(want, t)
		}
	}
	start, end := time.Unix(from, 0), time.Unix(to, 0)
	byTime := map[int64][]float64{}
	d.mu.Lock()
	for _, s := range d.points {
		if s.metric != metric || !tagsMatch(s.tags, want) {
			continue
		}
		for _, p := range s.points {
			if !p.at.Before(start) && !p.at.After(end) {
				ms := p.at.UnixMilli()
				byTime[ms] = append(byTime[ms], p.v)
			}
		}
	}
	d.mu.Unlock()
	times := slices.Sorted(func(yield func(int64) bool) {
		for t := range byTime {
			if !yield(t) {
				return
			}
		}
	})
	points := make([][2]any, 0, len(times))
	for _, t := range times {
		vals := byTime[t]
		var v float64
		switch aggr {
		case "sum":
			for _, x := range vals {
				v += x
			}
		case "avg":
			for _, x := range vals {
				v += x
			}
			v /= float64(len(vals))
		case "max":
			v = slices.Max(vals)
		case "min":
			v = slices.Min(vals)
		default: // a percentile of a distribution: one series per tag set here
			v = slices.Max(vals)
		}
		points = append(points, [2]any{float64(t), v})
	}
	// A gap, as Datadog writes one: null where no point was sent.
	if len(points) > 0 {
		points = append(points, [2]any{float64(end.UnixMilli()), nil})
	}
	series := []map[string]any{}
	if len(times) > 0 {
		series = append(series, map[string]any{
			"aggr": aggr, "metric": metric, "tag_set": []string{}, "expression": q.Get("query"), "scope": strings.Join(want, ","),
			"interval": 1, "length": len(points), "start": times[0], "end": times[len(times)-1], "pointlist": points,
			"display_name": metric, "query_index": 0, "unit": []any{map[string]any{"family": "general", "name": "hit", "plural": "hits"}, nil},
			"attributes": map[string]any{},
		})
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"status": "ok", "res_type": "time_series", "resp_version": 1, "query": q.Get("query"),
		"from_date": from * 1000, "to_date": to * 1000, "series": series, "values": []any{}, "times": []any{}, "message": "", "group_by": []string{},
	})
}

// tagsMatch reports whether a series' tags include each wanted tag; a
// wanted "key:*" matches any value of key.
func tagsMatch(have, want []string) bool {
	for _, w := range want {
		k, v, _ := strings.Cut(w, ":")
		found := false
		for _, h := range have {
			hk, hv, _ := strings.Cut(h, ":")
			if hk == k && (v == "*" || hv == v) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Follow plays Datadog's agent and tracer for a test service every
// interval until the test ends: it reads the service's request counters,
// latency histogram and running version, and records the interval's
// trace.<span>.hits and .errors counts and the trace.<span> latency
// percentiles, tagged service, env and the version that served them.
func (d *Datadog) Follow(tb testing.TB, svcAddr, service, env, span string, every time.Duration) {
	tb.Helper()
	stop := make(chan struct{})
	done := make(chan struct{})
	tb.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		var prev *svcSnapshot
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			snap, err := snapshot(svcAddr)
			if err == nil {
				if prev != nil && snap.total >= prev.total {
					tags := []string{"service:" + service, "env:" + env, "version:" + snap.version}
					now := time.Now()
					d.Add("trace."+span+".hits", tags, now, snap.total-prev.total)
					d.Add("trace."+span+".errors", tags, now, snap.errors-prev.errors)
					if n := snap.total - prev.total; n > 0 {
						d.Add("trace."+span, tags, now, bucketQuantile(0.99, snap.buckets, prev.buckets))
					}
				}
				prev = snap
				d.mu.Lock()
				d.flushes++
				close(d.flushed)
				d.flushed = make(chan struct{})
				d.mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
}

// WaitForFlushes returns once Follow has flushed n times since it
// started: the history a baseline is measured on. It fails the test after
// a minute.
func (d *Datadog) WaitForFlushes(tb testing.TB, n int) {
	tb.Helper()
	deadline := time.After(time.Minute)
	for {
		d.mu.Lock()
		done, next := d.flushes >= n, d.flushed
		d.mu.Unlock()
		if done {
			return
		}
		select {
		case <-next:
		case <-deadline:
			tb.Fatalf("the Datadog agent did not flush %d times within a minute", n)
		}
	}
}

type svcSnapshot struct {
	version       string
	total, errors float64
	buckets       map[float64]float64 // le → cumulative count
}

func snapshot(addr string) (*svcSnapshot, error) {
	resp, err := http.Get("http://" + addr + "/admin/state")
	if err != nil {
		return nil, err
	}
	var st struct {
		Version string `json:"version"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp, err = http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	s := &svcSnapshot{version: st.Version, buckets: map[float64]float64{}}
	if f := fams["http_requests_total"]; f != nil {
		for _, m := range f.Metric {
			v := m.GetCounter().GetValue()
			s.total += v
			if strings.HasPrefix(label(m, "status"), "5") {
				s.errors += v
			}
		}
	}
	if f := fams["http_request_duration_seconds"]; f != nil {
		for _, m := range f.Metric {
			inf := false
			for _, b := range m.GetHistogram().GetBucket() {
				s.buckets[b.GetUpperBound()] += float64(b.GetCumulativeCount())
				inf = inf || math.IsInf(b.GetUpperBound(), 1)
			}
			if !inf {
				s.buckets[math.Inf(1)] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return s, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// bucketQuantile is the q-quantile of the observations between two
// cumulative histograms, interpolated within its bucket.
func bucketQuantile(q float64, now, before map[float64]float64) float64 {
	les := make([]float64, 0, len(now))
	for le := range now {
		les = append(les, le)
	}
	sort.Float64s(les)
	total := now[math.Inf(1)] - before[math.Inf(1)]
	if total <= 0 {
		return math.NaN()
	}
	rank, lower, below := q*total, 0.0, 0.0
	for _, le := range les {
		c := now[le] - before[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return lower
			}
			if c == below {
				return le
			}
			return lower + (le-lower)*(rank-below)/(c-below)
		}
		lower, below = le, c
	}
	return lower
}
