package watch

import (
	"context"
	"fmt"

	"github.com/deploywatch/deploywatch/internal/event"
)

// verify runs the post-deploy checklist (metrics flowing, readiness,
// version, smoke tests, logs). A failed item fails the deploy with the
// item as the reason. A resumed verify runs the whole checklist again
// (its items check; a smoke suite that writes must bear being run twice).
func (w *run) verify(ctx context.Context) (ended, error) {
	if err := w.watchHealth(ctx); err != nil {
		return ended{}, err
	}
	if w.checklist == nil {
		return skipped("nothing to verify"), nil
	}
	w.report.Verify = nil
	for it := range w.checklist.Run(ctx, w.deploy) {
		w.report.Verify = append(w.report.Verify, it)
		msg := fmt.Sprintf("%s %s", it.Name, it.Outcome)
		if it.Evidence != "" {
			msg += ": " + it.Evidence
		}
		w.emit(Event{Kind: event.Note, Message: msg})
		if ctx.Err() != nil {
			return ended{}, errStopped
		}
		if it.Outcome == OutcomeFailed {
			return ended{}, &failure{reason: "verify " + it.Name + ": " + it.Evidence}
		}
	}
	return passed("the post-deploy checklist passed"), nil
}
