package cli

import (
	"fmt"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/smoke"
	"github.com/deploywatch/deploywatch/internal/traffic"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// trafficDuringWatch sends the config's synthetic traffic from the start
// of the warm-up (or whichever later phase a resumed watch takes up) to
// the end of the monitor window; a rollback or a verdict stops it too.
type trafficDuringWatch struct {
	gen     *traffic.Generator
	version string
	stats   *traffic.Stats
}

func (a *app) trafficFor(cfg *config.Config) (*trafficDuringWatch, error) {
	t := cfg.Traffic
	if t == nil {
		return nil, nil
	}
	suite, err := smoke.LoadFile(cfg.Resolve(cfg.Verify.Smoke))
	if err != nil {
		return nil, &usageError{fmt.Errorf("traffic: %w", err)}
	}
	p, err := suite.Replayer(smoke.Options{BaseURL: cfg.Verify.BaseURL, Env: a.env})
	if err != nil {
		return nil, &usageError{fmt.Errorf("traffic: %w", err)}
	}
	return &trafficDuringWatch{gen: traffic.New(p, traffic.Options{
		Rate: t.Rate, Max: t.MaxRequests, Concurrency: t.Concurrency, Header: t.Header,
	})}, nil
}

func (t *trafficDuringWatch) Event(e watch.Event) {
	switch {
	case e.Kind == event.Started && e.Deploy != nil:
		t.version = e.Deploy.Version
	case e.Kind == event.PhaseStarted && (e.Phase == watch.PhaseWarmup || e.Phase == watch.PhaseVerify || e.Phase == watch.PhaseMonitor):
		t.gen.Start(t.version)
	case e.Kind == event.PhaseEnded && e.Phase == watch.PhaseMonitor, e.Kind == event.RollbackStarted, e.Kind == event.Verdict:
		t.stop()
	}
}

// stop ends the traffic (once) and keeps its counts for the report.
func (t *trafficDuringWatch) stop() *traffic.Stats {
	if t.stats == nil {
		st := t.gen.Stop()
		t.stats = &st
	}
	return t.stats
}
