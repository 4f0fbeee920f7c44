package watch

import (
	"context"
	"time"

	"github.com/deploywatch/deploywatch/internal/metrics"
)

// Querier answers PromQL.
type Querier interface {
	Query(ctx context.Context, expr string, at time.Time) (metrics.Vector, error)
	QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (metrics.Matrix, error)
}

// HistoryCollector is a source that starts without history, such as the
// embedded engine: before run deploys, Start lets it collect the baseline
// window.
type HistoryCollector interface {
	// CollectingSince is when the source began collecting.
	CollectingSince() time.Time
}

// RateLimitCounter is a source whose server limits how often it may be
// asked (Datadog): it counts the queries that met the limit, and the
// report says how many.
type RateLimitCounter interface {
	RateLimited() int64
}
