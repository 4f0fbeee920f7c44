// Package httpmetrics records the RED metrics of a net/http service under
// the names deploywatch's default checks, alert rules and dashboard read:
//
//	http_requests_total{method, route, status}          counter
//	http_request_duration_seconds{method, route}        histogram
//	http_requests_in_flight                              gauge
//
// route is the pattern that matched the request in an http.ServeMux
// ("/items/{id}"), never the raw path, so the number of series stays
// bounded however many different URLs clients send.
package httpmetrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultBuckets resolve latencies around the lines deploywatch judges:
// 500 ms (the seed's "normal" p99) sits between 400 and 600 ms, and twice a
// typical baseline falls on a bucket edge or close to one.
var DefaultBuckets = []float64{.005, .01, .025, .05, .1, .15, .2, .25, .3, .4, .5, .6, .75, 1, 1.5, 2, 2.5, 5, 10}

// Metrics is the middleware's collectors.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	route    func(*http.Request) string
}

type options struct {
	statusLabel   string
	buckets       []float64
	nativeFactor  float64
	namespace     string
	constLabels   prometheus.Labels
	route         func(*http.Request) string
	unmatchedName string
}

// Option configures Metrics.
type Option func(*options)

// WithStatusLabel names the status-code label. Default "status"; many
// exporters use "code" (set metrics.status_label to match in
// deploywatch.yaml).
func WithStatusLabel(name string) Option { return func(o *options) { o.statusLabel = name } }

// WithBuckets replaces DefaultBuckets.
func WithBuckets(b []float64) Option { return func(o *options) { o.buckets = b } }

// WithNativeHistograms also records the latency as a native histogram
// with the given bucket growth factor (e.g. 1.1), for servers that ingest
// them; the classic buckets stay. Default off.
func WithNativeHistograms(factor float64) Option {
	return func(o *options) { o.nativeFactor = factor }
}

// WithNamespace prefixes the metric names (namespace_http_requests_total).
// Default none: deploywatch's defaults expect the bare names.
func WithNamespace(ns string) Option { return func(o *options) { o.namespace = ns } }

// WithConstLabels adds labels with fixed values to every series.
func WithConstLabels(l prometheus.Labels) Option { return func(o *options) { o.constLabels = l } }

// WithRoute replaces how the route label is found. Default: the
// ServeMux pattern that matched, without its method, or "unmatched" for
// requests no pattern matched (404s from the mux).
func WithRoute(f func(*http.Request) string) Option { return func(o *options) { o.route = f } }

// New creates the collectors and registers them with reg.
func New(reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
	o := options{statusLabel: "status", buckets: DefaultBuckets, unmatchedName: "unmatched"}
	for _, opt := range opts {
		opt(&o)
	}
	if o.route == nil {
		unmatched := o.unmatchedName
		o.route = func(r *http.Request) string { return PatternRoute(r, unmatched) }
	}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: o.namespace, Name: "http_requests_total", ConstLabels: o.constLabels,
			Help: "HTTP requests served, by method, route and status code.",
		}, []string{"method", "route", o.statusLabel}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: o.namespace, Name: "http_request_duration_seconds", ConstLabels: o.constLabels,
			Help:                        "Time from the request's arrival to the end of its response, by method and route.",
			Buckets:                     o.buckets,
			NativeHistogramBucketFactor: o.nativeFactor,
		}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: o.namespace, Name: "http_requests_in_flight", ConstLabels: o.constLabels,
			Help: "HTTP requests being served.",
		}),
		route: o.route,
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Middleware records every request that passes through next. Put it
// outside the ServeMux so that the matched pattern is known when the
// request ends:
//
//	mux := http.NewServeMux()
//	mux.HandleFunc("GET /items/{id}", getItem)
//	http.ListenAndServe(addr, m.Middleware(mux))
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inFlight.Inc()
		rec := &recorder{ResponseWriter: w}
		defer func() {
			p := recover()
			m.inFlight.Dec()
			status := rec.status
			switch {
			case p != nil && status == 0:
				// The handler panicked before answering: the client gets a
				// 500 or a dropped connection, a failure either way.
				status = http.StatusInternalServerError
			case status == 0:
				status = http.StatusOK // nothing written is an empty 200
			}
			method := normalizeMethod(r.Method)
			route := m.route(r)
			m.requests.WithLabelValues(method, route, statusLabel(status)).Inc()
			m.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
			if p != nil {
				panic(p)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// PatternRoute returns the ServeMux pattern that matched r, without the
// method ("GET /items/{id}" becomes "/items/{id}"), or unmatched.
func PatternRoute(r *http.Request, unmatched string) string {
	p := r.Pattern
	if p == "" {
		return unmatched
	}
	if i := strings.IndexByte(p, ' '); i >= 0 {
		p = strings.TrimLeft(p[i+1:], " \t")
	}
	return p
}

// statusCodes holds the label values of the valid codes, so that
// recording a request does not allocate one.
var statusCodes = func() (s [600]string) {
	for i := 100; i < len(s); i++ {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusLabel(code int) string {
	if code >= 100 && code < len(statusCodes) {
		return statusCodes[code]
	}
	return strconv.Itoa(code)
}

// normalizeMethod keeps the label's values bounded: unknown methods are
// one value.
func normalizeMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// recorder captures the status code. It unwraps for http.ResponseController,
// so Flush, Hijack and deadlines keep working through it.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 { // 1xx informational answers are not the status
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Flush implements http.Flusher for handlers that assert it directly.
func (r *recorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
