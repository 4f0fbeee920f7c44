package promql

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/deploywatch/deploywatch/internal/metrics"
)

// EngineOptions bound the embedded engine. Prometheus's zero EngineOpts
// reject every query (no time, no samples), so every limit is explicit.
type EngineOptions struct {
	// Timeout bounds one query. Default 30s.
	Timeout time.Duration
	// MaxSamples bounds the samples one query may load. Default 50 million,
	// Prometheus's own default.
	MaxSamples int
	// LookbackDelta is how far back an instant selector looks for a sample.
	// Default 5m, as in Prometheus.
	LookbackDelta time.Duration
}

// Engine evaluates PromQL over a Store with Prometheus's own engine, so
// checks and alert expressions behave exactly as on a Prometheus server.
type Engine struct {
	eng   *promql.Engine
	store *Store
}

// NewEngine returns an engine reading store.
func NewEngine(store *Store, o EngineOptions) *Engine {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MaxSamples <= 0 {
		o.MaxSamples = 50_000_000
	}
	if o.LookbackDelta <= 0 {
		o.LookbackDelta = 5 * time.Minute
	}
	return &Engine{
		eng: promql.NewEngine(promql.EngineOpts{
			Timeout:              o.Timeout,
			MaxSamples:           o.MaxSamples,
			LookbackDelta:        o.LookbackDelta,
			EnableAtModifier:     true,
			EnableNegativeOffset: true,
			Parser:               exprParser,
		}),
		store: store,
	}
}

// Query evaluates expr at time at.
func (e *Engine) Query(ctx context.Context, expr string, at time.Time) (metrics.Vector, error) {
	q, err := e.eng.NewInstantQuery(ctx, e.store, nil, expr, at)
	return run(ctx, expr, q, err, func(res parser.Value) (metrics.Vector, error) {
		switch v := res.(type) {
		case promql.Vector:
			out := make(metrics.Vector, 0, len(v))
			for _, s := range v {
				if s.H != nil {
					continue
				}
				out = append(out, metrics.Sample{Labels: toMap(s.Metric), Value: s.F, Time: time.UnixMilli(s.T).UTC()})
			}
			return out, nil
		case promql.Scalar:
			return metrics.Vector{{Labels: metrics.Labels{}, Value: v.V, Time: time.UnixMilli(v.T).UTC()}}, nil
		default:
			return nil, fmt.Errorf("%w: the query returns a %s, want an instant vector or scalar", metrics.ErrBadQuery, res.Type())
		}
	})
}

// QueryRange evaluates expr from start to end every step.
func (e *Engine) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (metrics.Matrix, error) {
	q, err := e.eng.NewRangeQuery(ctx, e.store, nil, expr, start, end, step)
	return run(ctx, expr, q, err, func(res parser.Value) (metrics.Matrix, error) {
		m, ok := res.(promql.Matrix)
		if !ok {
			return nil, fmt.Errorf("range query returned a %s", res.Type())
		}
		out := make(metrics.Matrix, 0, len(m))
		for _, s := range m {
			series := metrics.Series{Labels: toMap(s.Metric), Points: make([]metrics.Point, 0, len(s.Floats))}
			for _, p := range s.Floats {
				series.Points = append(series.Points, metrics.Point{Time: time.UnixMilli(p.T).UTC(), Value: p.F})
			}
			out = append(out, series)
		}
		return out, nil
	})
}

// run executes a query the engine just made (or failed to make: that is a
// bad query) and converts its value before Close hands the value's memory
// back to the engine's pools.
func run[T any](ctx context.Context, expr string, q promql.Query, err error, convert func(parser.Value) (T, error)) (T, error) {
	var zero T
	if err != nil {
		return zero, fmt.Errorf("%w: %v", metrics.ErrBadQuery, err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return zero, fmt.Errorf("evaluating %s: %w", expr, res.Err)
	}
	return convert(res.Value)
}

func toMap(l labels.Labels) metrics.Labels {
	m := make(metrics.Labels, l.Len())
	l.Range(func(lb labels.Label) { m[lb.Name] = lb.Value })
	return m
}
