package verify

import (
	"context"
	"fmt"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// metricsItem checks that the metrics the checks need are flowing: a
// target of the selector is up and, with the default checks, the request
// series exist.
type metricsItem struct {
	source   watch.Querier
	selector string
	// requests is the request counter the default checks read; "" for
	// custom checks, which may read anything.
	requests string
	// wait is how long the item retries while the new version comes up.
	wait time.Duration
	// vars gives the selector's platform variables (the new version's
	// pods), when it has some.
	vars func(ctx context.Context) map[string]string
}

// metricsFlowing runs the metrics item, retrying within its wait. A source
// that cannot be read skips the item: the monitor's checks will say so,
// and end the watch inconclusive if it stays unreadable.
func (c *Checklist) metricsFlowing(ctx context.Context) watch.VerifyItem {
	m := c.metrics
	var problem string
	var err error
	deadline := c.now().Add(m.wait)
	for {
		problem, err = m.look(ctx, c.now())
		if err == nil && problem == "" {
			return passed("metrics", "the targets are up and the request series exist")
		}
		if !c.now().Before(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(c.poll):
		}
	}
	if err != nil {
		return skipped("metrics", "the metric source cannot be read: "+err.Error())
	}
	return failed("metrics", "%s", problem)
}

// look checks once; it returns the problem, or "" when metrics flow.
func (m *metricsItem) look(ctx context.Context, at time.Time) (string, error) {
	var platform map[string]string
	if m.vars != nil {
		platform = m.vars(ctx)
	}
	selector, err := config.ExpandSelector(m.selector, platform)
	if err != nil {
		return "", err
	}
	up := fmt.Sprintf("up{%s}", selector)
	vec, err := m.source.Query(ctx, up, at)
	if err != nil {
		return "", err
	}
	if len(vec) == 0 {
		return fmt.Sprintf("%s has no series: is the service scraped?", up), nil
	}
	upCount := 0
	for _, s := range vec {
		if s.Value == 1 {
			upCount++
		}
	}
	if upCount == 0 {
		return fmt.Sprintf("%s: none of %d targets is up", up, len(vec)), nil
	}
	if m.requests != "" {
		req := fmt.Sprintf("count(%s{%s})", m.requests, selector)
		vec, err := m.source.Query(ctx, req, at)
		if err != nil {
			return "", err
		}
		if len(vec) == 0 {
			return fmt.Sprintf("%s has no series: does the service export %s?", req, m.requests), nil
		}
	}
	return "", nil
}
