package demo

import (
	"context"
	"fmt"

	"github.com/deploywatch/deploywatch/internal/watch"
)

// Platform deploys the demo's releases to the Service in process, as a
// command target would with hooks.
type Platform struct {
	svc      *Service
	releases map[string]Release
}

var (
	_ watch.Platform         = (*Platform)(nil)
	_ watch.RollbackFinisher = (*Platform)(nil)
	_ watch.VersionReader    = (*Platform)(nil)
)

// NewPlatform returns a platform that knows the given releases.
func NewPlatform(svc *Service, releases ...Release) *Platform {
	p := &Platform{svc: svc, releases: map[string]Release{}}
	for _, r := range releases {
		p.releases[r.Version] = r
	}
	return p
}

// Current returns the running version.
func (p *Platform) Current(context.Context, watch.Deploy, bool) (string, error) {
	return p.svc.Running().Version, nil
}

// Running returns the running version.
func (p *Platform) Running(context.Context, watch.Deploy) (string, error) {
	return p.svc.Running().Version, nil
}

// Deploy switches the service to d.Version.
func (p *Platform) Deploy(_ context.Context, d watch.Deploy) error {
	rel, ok := p.releases[d.Version]
	if !ok {
		return fmt.Errorf("no release %s", d.Version)
	}
	p.svc.Switch(rel)
	return nil
}

// Progress reports the rollout done: the switch is instant.
func (p *Platform) Progress(context.Context, watch.Deploy) (watch.Progress, error) {
	return watch.Progress{Done: true, Message: "the new release serves all traffic"}, nil
}

// Rollback returns to the version recorded at Start.
func (p *Platform) Rollback(_ context.Context, d watch.Deploy) (watch.RollbackOutcome, error) {
	rel, ok := p.releases[d.PreviousVersion]
	if !ok {
		return watch.RollbackOutcome{}, fmt.Errorf("no release %q to roll back to", d.PreviousVersion)
	}
	p.svc.Switch(rel)
	return watch.RollbackOutcome{}, nil
}

// FinishRollback rolls back unless the recorded version already runs.
func (p *Platform) FinishRollback(ctx context.Context, d watch.Deploy) (watch.RollbackOutcome, error) {
	if p.svc.Running().Version == d.PreviousVersion {
		return watch.RollbackOutcome{Note: d.PreviousVersion + " already runs"}, nil
	}
	return p.Rollback(ctx, d)
}

// Pause does nothing: the demo's releases switch at once.
func (p *Platform) Pause(context.Context, watch.Deploy) error { return nil }
