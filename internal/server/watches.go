package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/notify"
	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/verify"
	"github.com/deploywatch/deploywatch/internal/watch"
	"github.com/deploywatch/deploywatch/internal/wire"
)

// origin is what serve keeps in a watch's state to take it up in another
// replica: the workload, the change, the pinned template, and the whole
// config the watch judges by (a ConfigMap edited meanwhile does not change
// the rules of a watch under way).
type origin struct {
	Namespace  string `json:"namespace"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Generation int64  `json:"generation"`
	// Template is the TemplateHash of the change watched; PinTemplate the
	// one pinned as the rollback target ("" when it was read at Start).
	Template    string `json:"template"`
	PinTemplate string `json:"pin_template,omitempty"`
	// Config is the merged config, as YAML.
	Config string `json:"config"`
}

// errShutdown is the cause of a watch stopped because this replica stops.
var errShutdown = errors.New("this replica is stopping; another takes the watch up")

// watches runs the watches of one leader term.
type watches struct {
	s *Server

	mu      sync.Mutex
	running map[string]*running // by workload key
	wg      sync.WaitGroup
}

// running is one watch under way.
type running struct {
	id          string
	namespace   string
	workload    string
	template    string
	pinTemplate string
	cancel      context.CancelCauseFunc
	done        chan struct{}
}

func newWatches(s *Server) *watches {
	return &watches{s: s, running: map[string]*running{}}
}

// get returns the watch under way for a workload key.
func (ws *watches) get(key string) *running {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.running[key]
}

// count is the number of watches under way.
func (ws *watches) count() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.running)
}

// stopAll stops every watch (a rollback under way is finished first) and
// waits for them, at most within.
func (ws *watches) stopAll(cause error, within time.Duration) {
	ws.mu.Lock()
	for _, r := range ws.running {
		r.cancel(cause)
	}
	ws.mu.Unlock()
	done := make(chan struct{})
	go func() { ws.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(within):
		ws.s.log.Error("watches did not stop in time", "within", within)
	}
}

// supersede stops a watch because a newer change of its workload came,
// and waits for it to end.
func (ws *watches) supersede(r *running, by string) {
	r.cancel(fmt.Errorf("superseded by %s", by))
	<-r.done
}

// newDeploy is a change to watch.
type newDeploy struct {
	wl          workload
	cfg         *config.Config
	startedAt   time.Time
	pinTemplate string
}

// start records a change of a workload as a deploy and watches it, unless
// it was recorded already (by this replica before, or another).
func (ws *watches) start(ctx context.Context, nd newDeploy) error {
	wl := nd.wl
	layers, err := yamlOf(nd.cfg)
	if err != nil {
		return err
	}
	o := origin{Namespace: wl.meta.Namespace, Kind: wl.kind, Name: wl.meta.Name, Generation: wl.generation,
		Template: wl.templateHash(), PinTemplate: nd.pinTemplate, Config: layers}
	originJSON, err := json.Marshal(o)
	if err != nil {
		return err
	}
	d := store.Deploy{
		Key: wl.deployKey(), Source: "serve", Service: nd.cfg.Service, Environment: nd.cfg.Environment,
		Namespace: wl.meta.Namespace, Kind: wl.kind, Workload: wl.meta.Name, Version: wl.version(),
		Revision: strconv.FormatInt(wl.generation, 10), TriggeredBy: wl.triggeredBy(), StartedAt: nd.startedAt,
		Owner: ws.s.identity,
	}
	if d.CommitTime, err = wl.commitTime(); err != nil {
		// A wrong annotation costs the lead time of one deploy, not its watch.
		ws.s.log.Warn("no lead time for this deploy", "workload", wl.String(), "err", err)
	}
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	stored, created, err := ws.s.store.CreateDeploy(sctx, d)
	cancel()
	if err != nil {
		return fmt.Errorf("recording the deploy of %s: %w", wl, err)
	}
	if !created {
		ws.s.log.Debug("the change was recorded before", "workload", wl.String(), "deploy", stored.ID, "verdict", stored.Verdict)
		return nil
	}
	req := watch.Request{Version: d.Version, StartedAt: nd.startedAt, TriggeredBy: d.TriggeredBy, Origin: originJSON}
	return ws.run(ctx, stored.ID, o, nd.cfg, func(eng *watch.Engine, wctx context.Context) (*watch.Report, error) {
		return eng.Run(wctx, req), nil
	})
}

// resume takes up a watch another replica (or this one, before it
// stopped) left in progress.
func (ws *watches) resume(ctx context.Context, d store.Deploy) error {
	st, err := watch.DecodeState(d.State)
	if err != nil {
		return ws.abandon(ctx, d, fmt.Sprintf("its state cannot be resumed: %v", err))
	}
	var o origin
	if err := json.Unmarshal(st.Origin, &o); err != nil || o.Name == "" {
		return ws.abandon(ctx, d, "its state does not say which workload it watched")
	}
	cfg, err := config.Load([]byte(o.Config), "the config of deploy "+d.ID)
	if err != nil {
		return ws.abandon(ctx, d, fmt.Sprintf("its config cannot be loaded: %v", err))
	}
	return ws.run(ctx, d.ID, o, cfg, func(eng *watch.Engine, wctx context.Context) (*watch.Report, error) {
		return eng.Resume(wctx, st)
	})
}

// abandon ends a deploy that cannot be watched as inconclusive.
func (ws *watches) abandon(ctx context.Context, d store.Deploy, why string) error {
	ws.s.log.Error("a watch cannot be taken up", "deploy", d.ID, "why", why)
	return ws.end(ctx, d, "could not be taken up: "+why)
}

// end ends a deploy as inconclusive for the reason.
func (ws *watches) end(ctx context.Context, d store.Deploy, reason string) error {
	now := time.Now()
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	return ws.s.store.Checkpoint(sctx, d.ID, store.Progress{Verdict: store.Inconclusive, Reason: reason,
		PreviousVersion: d.PreviousVersion, EndedAt: &now, Report: d.Report, State: d.State})
}

// run registers a watch and runs it in the background: its parts (the
// metric source, the platform's informers, the sinks) are built there too,
// so that a burst of deploys is not started one after the other.
func (ws *watches) run(ctx context.Context, id string, o origin, cfg *config.Config,
	follow func(*watch.Engine, context.Context) (*watch.Report, error)) error {
	key := o.Namespace + "/" + o.Kind + "/" + o.Name
	// A watch ends by its verdict, or when cancelled with a cause: a newer
	// change (superseded) or this replica stopping (errShutdown). The term
	// ending is not a cause of its own: stopAll says which it is.
	wctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	r := &running{id: id, namespace: o.Namespace, workload: o.Name, template: o.Template, pinTemplate: o.PinTemplate,
		cancel: cancel, done: make(chan struct{})}
	ws.mu.Lock()
	if old := ws.running[key]; old != nil {
		ws.mu.Unlock()
		cancel(nil)
		return fmt.Errorf("%s is already watched (deploy %s)", key, old.id)
	}
	ws.running[key] = r
	ws.s.metrics.inProgress.Set(float64(len(ws.running)))
	ws.mu.Unlock()
	ws.wg.Add(1)
	go func() {
		defer ws.wg.Done()
		defer close(r.done)
		defer func() {
			ws.mu.Lock()
			delete(ws.running, key)
			ws.s.metrics.inProgress.Set(float64(len(ws.running)))
			ws.mu.Unlock()
		}()
		ws.follow(wctx, cancel, id, o, cfg, follow)
	}()
	return nil
}

// follow builds a watch's parts, runs it, and records how it ended.
func (ws *watches) follow(wctx context.Context, cancel context.CancelCauseFunc, id string, o origin, cfg *config.Config,
	follow func(*watch.Engine, context.Context) (*watch.Report, error)) {
	log := ws.s.log.With("deploy", id, "workload", o.Namespace+"/"+o.Kind+"/"+o.Name)
	defer cancel(nil)
	src, err := wire.Source(wctx, cfg, ws.s.env, log)
	if err != nil {
		_ = ws.abandon(context.Background(), store.Deploy{ID: id}, err.Error())
		return
	}
	platform, err := wire.KubeTarget(wctx, cfg, wire.KubeOptions{REST: ws.s.rest}, func(hook, line string) {
		log.Info("hook output", "hook", hook, "line", line)
	}, nil)
	if err != nil {
		switch cause := context.Cause(wctx); {
		case errors.Is(cause, errShutdown):
			// Left for the next leader.
		case cause != nil:
			// Superseded before it began.
			_ = ws.end(context.Background(), store.Deploy{ID: id}, "the watch was stopped before a verdict ("+cause.Error()+"); nothing was rolled back")
		default:
			_ = ws.abandon(context.Background(), store.Deploy{ID: id}, err.Error())
		}
		return
	}
	defer platform.Close()
	if o.PinTemplate != "" {
		platform.PinTemplate(o.PinTemplate)
	}
	disp, err := wire.Dispatcher(cfg, ws.s.env, nil)
	if err != nil {
		_ = ws.abandon(context.Background(), store.Deploy{ID: id}, err.Error())
		return
	}
	w := newWriter(ws.s.store, ws.s.hub, id, log, ws.s.metrics)
	observer := watch.ObserverFunc(func(e watch.Event) {
		if interrupted(e) && errors.Is(context.Cause(wctx), errShutdown) {
			return // the watch goes on in another replica: no verdict
		}
		w.Event(e)
		if e.Checks != nil {
			ws.s.metrics.checks(o.Namespace, o.Name, e.Checks)
		}
	})
	opts := []watch.Option{
		watch.WithObserver(notify.Observers{observer, disp}), watch.WithLogger(log), watch.WithCheckpoint(w),
	}
	if cfg.Verify != nil || src != nil {
		cl, err := verify.New(cfg, wire.ChecklistSources(src, platform), ws.s.env)
		if err != nil {
			w.close(0)
			disp.Flush(0)
			_ = ws.abandon(context.Background(), store.Deploy{ID: id}, err.Error())
			return
		}
		opts = append(opts, watch.WithChecklist(cl))
	}
	eng := watch.New(watch.SpecFor(cfg), src, platform, opts...)
	rep, err := follow(eng, wctx)
	cause := context.Cause(wctx)
	disp.Flush(10 * time.Second)
	for _, dl := range disp.Deliveries() {
		result := "ok"
		if !dl.OK {
			result = "failed"
		}
		ws.s.metrics.notifications.WithLabelValues(dl.Sink, result).Inc()
	}
	switch {
	case err != nil:
		log.Error("the watch could not be taken up", "err", err)
		_ = ws.abandon(context.Background(), store.Deploy{ID: id}, err.Error())
	case errors.Is(cause, errShutdown) && (!rep.Verdict.Ended() || isInterrupted(rep)):
		// Left at its last checkpoint for the next leader.
		ws.s.metrics.forget(o.Namespace, o.Name)
	default:
		if isInterrupted(rep) {
			// Superseded: ended here, so that nobody resumes it.
			if p, err := finalProgress(rep); err == nil {
				w.final(p)
			}
		}
		ws.s.metrics.ended(o.Namespace, o.Name, rep)
		ws.ended(o, rep)
		log.Info("watch ended", "verdict", rep.Verdict, "reason", rep.Reason)
	}
	w.close(time.Minute)
}

// ended remembers what a finished watch leaves known of its workload: a
// stable version becomes the one the next deploy is judged against.
func (ws *watches) ended(o origin, r *watch.Report) {
	if r.Verdict != watch.Stable {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := ws.s.store.PutWorkload(ctx, store.Workload{Namespace: o.Namespace, Kind: o.Kind, Name: o.Name, Template: o.Template}); err != nil {
		ws.s.log.Warn("could not record the stable version", "workload", o.Name, "err", err)
	}
}

// interrupted reports whether an event is the end of a watch that was
// stopped rather than decided.
func interrupted(e watch.Event) bool {
	switch e.Kind {
	case event.PhaseEnded:
		return e.Outcome == watch.OutcomeInterrupted
	case event.Verdict:
		return isInterrupted(e.Report)
	}
	return false
}

func isInterrupted(r *watch.Report) bool {
	if r == nil || len(r.Phases) == 0 {
		return false
	}
	return r.Phases[len(r.Phases)-1].Outcome == watch.OutcomeInterrupted
}

// finalProgress is the store's record of a report that ends a watch.
func finalProgress(r *watch.Report) (store.Progress, error) {
	report, err := r.Encode()
	if err != nil {
		return store.Progress{}, err
	}
	end := r.EndedAt
	p := store.Progress{Verdict: string(r.Verdict), Reason: r.Reason, PreviousVersion: r.Deploy.PreviousVersion,
		DetectedAt: r.DetectedAt, EndedAt: &end, Report: report}
	if rb := r.Rollback; rb != nil {
		p.RolledBack, p.RollbackOK = rb.Performed, rb.OK
	}
	return p, nil
}

// yamlOf is the YAML a config was loaded from, to be loaded again by a
// replica that resumes the watch.
func yamlOf(cfg *config.Config) (string, error) {
	if len(cfg.Source) == 0 {
		return "", fmt.Errorf("the config of %s has no source to keep", cfg.Service)
	}
	return string(cfg.Source), nil
}
