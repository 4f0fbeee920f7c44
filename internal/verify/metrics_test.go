package verify

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/metrics"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// querier answers up{job="api"} and the request count as a Prometheus
// with the given state would, from the n-th look.
type querier struct {
	looks    atomic.Int32
	up       func(look int) metrics.Vector
	requests metrics.Vector
	err      error
}

func (q *querier) Query(_ context.Context, expr string, _ time.Time) (metrics.Vector, error) {
	if q.err != nil {
		return nil, q.err
	}
	switch expr {
	case `up{job="api"}`:
		return q.up(int(q.looks.Add(1))), nil
	case `count(http_requests_total{job="api"})`:
		return q.requests, nil
	}
	return nil, errors.New("unexpected query " + expr)
}

func (q *querier) QueryRange(context.Context, string, time.Time, time.Time, time.Duration) (metrics.Matrix, error) {
	return nil, errors.New("not used")
}

func upIs(v float64) func(int) metrics.Vector {
	return func(int) metrics.Vector { return metrics.Vector{{Labels: metrics.Labels{"job": "api"}, Value: v}} }
}

func TestMetricsItem(t *testing.T) {
	some := metrics.Vector{{Value: 3}}
	cases := []struct {
		name    string
		q       *querier
		custom  bool // the config has its own checks: no request series needed
		outcome watch.Outcome
		says    string
	}{
		{"flowing", &querier{up: upIs(1), requests: some}, false, watch.OutcomePassed, "the targets are up"},
		{"not scraped", &querier{up: func(int) metrics.Vector { return nil }}, false, watch.OutcomeFailed, `up{job="api"} has no series: is the service scraped?`},
		{"targets down", &querier{up: upIs(0)}, false, watch.OutcomeFailed, "none of 1 targets is up"},
		{"no request series", &querier{up: upIs(1)}, false, watch.OutcomeFailed, `count(http_requests_total{job="api"}) has no series`},
		{"custom checks need no request series", &querier{up: upIs(1)}, true, watch.OutcomePassed, "the targets are up"},
		{"unreadable source is skipped", &querier{err: errors.New("connection refused")}, false, watch.OutcomeSkipped, "cannot be read: connection refused"},
		{"flows once the new version is scraped", &querier{requests: some, up: func(look int) metrics.Vector {
			if look < 3 {
				return nil
			}
			return upIs(1)(look)
		}}, false, watch.OutcomePassed, "the targets are up"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			src := "service: api\ntarget: {command: {rollback: \"true\"}}\nmetrics:\n  prometheus: {url: \"http://127.0.0.1:9090\"}\n  selector: 'job=\"api\"'\nphases: {verify: 300ms}\n"
			if c.custom {
				src += "checks:\n  - {name: up, query: 'min(up{$selector})', fail: '< 1'}\n"
			}
			cfg, err := config.Load([]byte(src), "deploywatch.yaml")
			if err != nil {
				t.Fatal(err)
			}
			cl, err := New(cfg, Sources{Metrics: c.q}, nil)
			if err != nil {
				t.Fatal(err)
			}
			cl.poll = 10 * time.Millisecond
			items := slices.Collect(cl.Run(context.Background(), watch.Deploy{}))
			if len(items) != 1 || items[0].Name != "metrics" {
				t.Fatalf("items %+v, want the metrics item alone", items)
			}
			if it := items[0]; it.Outcome != c.outcome || !strings.Contains(it.Evidence, c.says) {
				t.Fatalf("%s: %s, want %s saying %q", it.Outcome, it.Evidence, c.outcome, c.says)
			}
		})
	}
}

// A failed item stops the list for whoever stops taking items: the engine
// does not run the smoke tests of a version whose metrics do not flow.
func TestRunStopsWhenTheCallerStops(t *testing.T) {
	cl := checklist(t, "http://127.0.0.1:1", "")
	cl.metrics = &metricsItem{source: &querier{up: upIs(0)}, selector: `job="api"`}
	var names []string
	for it := range cl.Run(context.Background(), watch.Deploy{}) {
		names = append(names, it.Name)
		if it.Outcome == watch.OutcomeFailed {
			break
		}
	}
	if strings.Join(names, ",") != "metrics" {
		t.Fatalf("items taken: %v", names)
	}
}
