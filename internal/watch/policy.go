package watch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
)

// act carries out a policy after a failed or inconclusive watch: roll
// back to the version recorded at Start, pause, or only tell.
//
// The action must finish even if the watch is being stopped: a half-done
// rollback is the worst outcome. Only the abort context interrupts it.
func (w *run) act(ctx context.Context, policy config.Policy, setting, reason string) {
	actx := context.WithoutCancel(ctx)
	if w.abort != nil {
		var cancel context.CancelCauseFunc
		actx, cancel = context.WithCancelCause(actx)
		stop := context.AfterFunc(w.abort, func() { cancel(errors.New("aborted by a second interrupt")) })
		defer stop()
		defer cancel(nil)
	}
	switch policy {
	case config.PolicyRollback:
		w.rollBack(actx, reason)
	case config.PolicyPause:
		w.pause(actx)
	default:
		w.report.Rollback = &RollbackRecord{Policy: string(policy)}
		w.note("%s is notify: the new version stays in place", setting)
	}
}

// rollBack returns the platform to the version recorded at Start. The
// rollback phase is begun, and saved, before the platform is asked: a
// watch resumed inside it asks the platform to finish what may have been
// done rather than to roll back again.
func (w *run) rollBack(ctx context.Context, reason string) {
	target := orUnknown(w.deploy.PreviousVersion)
	if w.deploy.PreviousVersion == "" {
		target = "the previous version"
	}
	resumed := w.resumingPhase(PhaseRollback)
	if !resumed {
		at := w.clock.Now()
		w.report.Rollback = &RollbackRecord{Policy: string(config.PolicyRollback), Revision: w.deploy.PreviousVersion, Performed: true, At: &at}
		w.openPhase(PhaseRollback)
		w.emit(Event{Kind: event.RollbackStarted, Message: fmt.Sprintf("rolling back to %s: %s", target, reason)})
		// Saved once, after the announcement: a store that writes events
		// before checkpoints, and waits for the checkpoint before an action,
		// then never holds a rollback begun without its announcement,
		// wherever the process dies.
		_ = w.save()
	}
	rec := w.report.Rollback
	var out RollbackOutcome
	var err error
	switch f, ok := w.platform.(RollbackFinisher); {
	case !resumed:
		out, err = w.platform.Rollback(ctx, w.deploy)
	case ok:
		w.note("the rollback had begun when the watch was interrupted: finishing it without undoing twice")
		out, err = f.FinishRollback(ctx, w.deploy)
	default:
		err = errors.New("the rollback had begun when the watch was interrupted, and this platform cannot tell whether it finished: it is not run twice; check the service by hand")
	}
	rec.Duration = w.clock.Now().Sub(*rec.At).Round(time.Millisecond).String()
	rec.Note = out.Note
	kind := event.RollbackDone
	switch {
	case err != nil:
		if cause := context.Cause(ctx); cause != nil {
			err = fmt.Errorf("%w (%v)", err, cause)
		}
		rec.Error = err.Error()
		kind = event.RollbackFailed
		w.endPhase(OutcomeFailed, "rollback failed: "+err.Error())
	case out.Declined:
		rec.Performed, rec.At = false, nil
		w.endPhase(OutcomeSkipped, "not rolled back: "+out.Note)
	default:
		rec.OK = true
		msg := "rolled back to " + target
		if out.Note != "" {
			msg += ": " + out.Note
		}
		w.endPhase(OutcomePassed, msg)
	}
	w.emit(Event{Kind: kind, Message: w.current.Reason, Rollback: rec})
}

// pause stops the rollout where it is. Pausing twice is harmless, so a
// resumed watch pauses again.
func (w *run) pause(ctx context.Context) {
	w.report.Rollback = &RollbackRecord{Policy: string(config.PolicyPause)}
	if !w.resumingPhase(PhasePause) {
		w.beginPhase(PhasePause)
	}
	if err := w.platform.Pause(ctx, w.deploy); err != nil {
		w.report.Rollback.Error = err.Error()
		w.endPhase(OutcomeFailed, "pause failed: "+err.Error())
		return
	}
	w.endPhase(OutcomePassed, "the new version stays in place, paused, for a human to decide")
}
