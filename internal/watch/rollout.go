package watch

import (
	"context"
	"fmt"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
)

// rollout runs the deploy (run only) and follows the platform until the
// new version is fully out, watching the pods' health meanwhile. Where the
// platform runs the old and the new version side by side (a rolling
// update), their error shares are compared at every look (sidebyside.go).
func (w *run) rollout(ctx context.Context) (ended, error) {
	if err := w.runDeploy(ctx); err != nil {
		return ended{}, err
	}
	limit := w.spec.Phases.Rollout
	deadline := w.current.StartedAt.Add(limit)
	errs := judge.Tracker{Limits: judge.Limits{Errors: w.spec.ErrorLimit}}
	step := w.spec.Phases.Interval
	if _, ok := w.platform.(SideBySider); ok && len(w.sideChecks()) > 0 {
		step = min(step, w.lookEvery())
	}
	var lastMsg string
	for looks := 1; ; looks++ {
		if err := w.watchHealth(ctx); err != nil {
			return ended{}, err
		}
		pctx, cancel := w.platformContext(ctx)
		p, err := w.platform.Progress(pctx, w.deploy)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ended{}, errStopped
		case err != nil:
			lastMsg = err.Error()
			w.note("rollout status: %v", err)
			if errs.Observe(judge.Error) {
				return ended{}, &inconclusive{reason: "could not follow the rollout: " + err.Error()}
			}
		case p.Failed:
			return ended{}, &failure{reason: "the rollout failed: " + p.Message}
		case p.Done:
			w.rolledOutAtOnce = looks == 1 && !w.resuming
			return passed("%s", p.Message), nil
		default:
			errs.Observe(judge.Pass)
			if p.Message != lastMsg {
				w.emit(Event{Kind: event.Progress, Message: p.Message})
			}
			lastMsg = p.Message
			if err := w.lookSideBySide(ctx); err != nil {
				return ended{}, err
			}
		}
		if !w.clock.Now().Before(deadline) {
			return ended{}, &failure{reason: fmt.Sprintf("the rollout did not complete within %s: %s",
				config.FormatDuration(limit), lastMsg)}
		}
		if err := w.sleep(ctx, step); err != nil {
			return ended{}, err
		}
	}
}

// runDeploy starts the deploy, once: the state says it began before the
// command runs, so a watch resumed after a crash never runs it again and
// follows what the platform reports instead. If the state cannot say so,
// nothing is deployed.
func (w *run) runDeploy(ctx context.Context) error {
	switch {
	case !w.req.RunDeploy:
		return nil
	case w.deployInterrupted:
		return &inconclusive{reason: "the deploy command was stopped before it finished; it is not run again, and a half-made deploy is not judged: nothing was rolled back"}
	case w.deployBegan:
		return w.deployResumed(ctx)
	}
	w.deployBegan = true
	if err := w.save(); err != nil {
		w.deployBegan = false
		return &inconclusive{reason: fmt.Sprintf("the watch's state could not be saved before deploying (%v), so the deploy could not be taken up after a crash: nothing was deployed", err)}
	}
	if err := w.platform.Deploy(ctx, w.deploy); err != nil {
		if ctx.Err() != nil {
			w.deployInterrupted = true
			_ = w.save()
			return errStopped
		}
		return &failure{reason: "the deploy command failed: " + err.Error()}
	}
	return nil
}

// deployResumed follows a deploy whose command had begun before the watch
// was interrupted, without running it again. If the platform can tell that
// the version recorded at Start still runs, the command never changed
// anything (or not yet): judging would judge the old version.
func (w *run) deployResumed(ctx context.Context) error {
	if vr, ok := w.platform.(VersionReader); ok && w.deploy.PreviousVersion != "" {
		pctx, cancel := w.platformContext(ctx)
		running, err := vr.Running(pctx, w.deploy)
		cancel()
		if err == nil && running == w.deploy.PreviousVersion {
			return &inconclusive{reason: fmt.Sprintf("the deploy command had begun when the watch was interrupted, and %s, the version before it, still runs: it is not run again, and the old version is not judged as the new one",
				running)}
		}
	}
	w.note("the deploy command had been started before the watch was interrupted; it is not run again: following the rollout as the platform reports it")
	return nil
}
