package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/textutil"
	"github.com/deploywatch/deploywatch/internal/wire"
)

// controller turns the changes of opted-in workloads into watches, for one
// leader term.
//
// The whole story of a workload is reconcile: its own rollback is not a
// deploy; a change while it is watched supersedes that watch; a workload
// seen for the first time is adopted as known-good (or watched, if its
// rollout is still going); a template that differs from the last one known
// good is a deploy to watch, whether it came now or while no leader ran.
type controller struct {
	s       *Server
	watches *watches
	// queue holds the workloads to reconcile; a key is never reconciled
	// by two workers at once, and a failed reconcile is retried with
	// backoff. pending holds each queued key's newest object and when its
	// change was seen.
	queue   workqueue.TypedRateLimitingInterface[string]
	mu      sync.Mutex
	pending map[string]change
	synced  []cache.InformerSynced
	// started is when the term began: a change older than this came while
	// no leader watched.
	started time.Time

	errMu sync.Mutex
	// configErrors are the workloads whose config cannot be used, with
	// the problem (reported once until it changes).
	configErrors map[string]string
}

// change is a workload as last seen, and when its change was seen.
type change struct {
	wl   workload
	seen time.Time
}

// workers is how many workloads are reconciled at once.
const workers = 8

func newController(s *Server) *controller {
	return &controller{s: s, watches: newWatches(s), pending: map[string]change{}, configErrors: map[string]string{}, started: time.Now(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "deploywatch"})}
}

// run watches the workloads until ctx ends, then stops the watches (a
// rollback under way is finished first) and returns.
func (c *controller) run(ctx context.Context) error {
	if err := c.resumeInProgress(ctx); err != nil {
		return err
	}
	k := c.s.cfg.Kubernetes
	namespaces := k.Namespaces
	if k.AllNamespaces {
		namespaces = []string{metav1.NamespaceAll}
	}
	var factories []informers.SharedInformerFactory
	for _, ns := range namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(c.s.cs, 10*time.Minute, informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = WatchLabel + "=true" }))
		handler := cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.changed(ctx, nil, obj) },
			UpdateFunc: func(old, obj any) { c.changed(ctx, old, obj) },
		}
		for _, inf := range []cache.SharedIndexInformer{f.Apps().V1().Deployments().Informer(), f.Apps().V1().StatefulSets().Informer(), f.Apps().V1().DaemonSets().Informer()} {
			if _, err := inf.AddEventHandler(handler); err != nil {
				return err
			}
			c.synced = append(c.synced, inf.HasSynced)
		}
		factories = append(factories, f)
	}
	stop := make(chan struct{})
	for _, f := range factories {
		f.Start(stop)
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	close(stop)
	for _, f := range factories {
		f.Shutdown()
	}
	c.queue.ShutDown()
	wg.Wait()
	c.watches.stopAll(errShutdown, stopTimeout)
	return nil
}

// next reconciles one queued workload; false once the queue shuts down.
func (c *controller) next(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	c.mu.Lock()
	ch, ok := c.pending[key]
	delete(c.pending, key)
	c.mu.Unlock()
	if !ok {
		c.queue.Forget(key)
		return true
	}
	if err := c.reconcile(ctx, ch.wl, ch.seen); err != nil && ctx.Err() == nil {
		c.s.log.Error("reconciling a workload; retrying", "workload", ch.wl.String(), "err", err)
		c.mu.Lock()
		if _, newer := c.pending[key]; !newer {
			c.pending[key] = ch
		}
		c.mu.Unlock()
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

// hasSynced reports whether the informers have their first lists.
func (c *controller) hasSynced() bool {
	for _, s := range c.synced {
		if !s() {
			return false
		}
	}
	return len(c.synced) > 0
}

// resumeInProgress takes up the watches the store has in progress,
// retrying while the store does not answer.
func (c *controller) resumeInProgress(ctx context.Context) error {
	var deploys []store.Deploy
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		var err error
		deploys, err = c.s.store.InProgress(sctx)
		cancel()
		if err == nil {
			break
		}
		c.s.log.Warn("cannot list the watches in progress; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
	for _, d := range deploys {
		if d.Source != "serve" {
			continue
		}
		c.s.log.Info("taking up a watch in progress", "deploy", d.ID, "workload", d.Namespace+"/"+d.Workload)
		if err := c.watches.resume(ctx, d); err != nil {
			c.s.log.Error("could not take up a watch", "deploy", d.ID, "err", err)
		}
	}
	return nil
}

// changed is the informers' callback: it queues the workload if its
// template (or its config's name) changed, or if it is new.
func (c *controller) changed(ctx context.Context, oldObj, obj any) {
	seen := time.Now()
	wl, ok := workloadOf(obj)
	if !ok || ctx.Err() != nil {
		return
	}
	if oldObj != nil {
		if old, ok := workloadOf(oldObj); ok && old.templateHash() == wl.templateHash() && old.meta.Annotations[ConfigAnnotation] == wl.meta.Annotations[ConfigAnnotation] {
			return // scaling, labels, status: nothing to watch
		}
	}
	key := wl.key()
	c.mu.Lock()
	c.pending[key] = change{wl: wl, seen: seen}
	c.mu.Unlock()
	c.queue.Add(key)
}

// reconcile decides what a workload's current template means; seen is
// when the change was seen, the start of a deploy it begins.
func (c *controller) reconcile(ctx context.Context, wl workload, seen time.Time) error {
	current := wl.templateHash()
	if wl.ownRollback() {
		return nil // deploywatch's own rollback, part of the watch that made it
	}
	running := c.watches.get(wl.key())
	if running != nil && running.template == current {
		return nil
	}
	cfg, err := c.configOf(ctx, wl)
	if err != nil {
		c.configError(ctx, wl, err)
		return nil
	}
	c.configOK(wl)
	if running != nil {
		c.s.log.Info("a new change supersedes the watch under way", "workload", wl.String(), "deploy", running.id)
		c.watches.supersede(running, fmt.Sprintf("generation %d (%s)", wl.generation, wl.version()))
		return c.watches.start(ctx, newDeploy{wl: wl, cfg: cfg, startedAt: seen, pinTemplate: running.pinTemplate})
	}
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	known, err := c.s.store.Workload(sctx, wl.meta.Namespace, wl.kind, wl.meta.Name)
	cancel()
	switch {
	case errors.Is(err, store.ErrNotFound):
		if wl.rollingOut {
			// Adopted in the middle of a rollout: watched, pinned to the
			// revision before it.
			c.s.log.Info("adopting a workload whose rollout is under way: watching it", "workload", wl.String())
			return c.watches.start(ctx, newDeploy{wl: wl, cfg: cfg, startedAt: c.changedAt(ctx, wl, cfg, time.Time{})})
		}
		c.s.log.Info("adopting a workload: its running version is taken as known-good", "workload", wl.String())
		return c.remember(ctx, wl, current)
	case err != nil:
		return fmt.Errorf("reading what is known of %s: %w", wl, err)
	case known.Template == current:
		return nil
	case known.Template == "":
		return c.remember(ctx, wl, current)
	}
	startedAt := seen
	if since := known.UpdatedAt; since.Before(c.started) {
		// Perhaps changed while no leader watched: the change's own time.
		startedAt = c.changedAt(ctx, wl, cfg, since)
	}
	return c.watches.start(ctx, newDeploy{wl: wl, cfg: cfg, startedAt: startedAt, pinTemplate: known.Template})
}

// changedAt is when the workload's current template was applied, if that
// was after since (else now): the time field management records for the
// template, else the creation of the template's revision.
func (c *controller) changedAt(ctx context.Context, wl workload, cfg *config.Config, since time.Time) time.Time {
	// Field management keeps whole seconds.
	if at := wl.templateChangedAt(); !at.IsZero() && !at.Before(since.Truncate(time.Second)) && !at.After(time.Now()) {
		return at
	}
	t, err := wire.KubeTarget(ctx, cfg, wire.KubeOptions{REST: c.s.rest}, nil, nil)
	if err != nil {
		return time.Now()
	}
	defer t.Close()
	at, err := t.ChangedAt(ctx)
	if err != nil || at.IsZero() || !at.After(since) {
		return time.Now()
	}
	return at
}

// remember records a workload's current template as known-good.
func (c *controller) remember(ctx context.Context, wl workload, template string) error {
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	return c.s.store.PutWorkload(sctx, store.Workload{Namespace: wl.meta.Namespace, Kind: wl.kind, Name: wl.meta.Name, Template: template})
}

// configOf is the workload's config: serve.yaml's defaults, the workload
// itself (service = its name, target = it), and its ConfigMap if it names
// one.
func (c *controller) configOf(ctx context.Context, wl workload) (*config.Config, error) {
	what := wl.String()
	layers := []config.Layer{c.s.cfg.DefaultsLayer}
	self, err := config.WorkloadLayer(what, wl.meta.Namespace, wl.kind, wl.meta.Name, wl.meta.Name)
	if err != nil {
		return nil, err
	}
	layers = append(layers, self)
	if name := wl.meta.Annotations[ConfigAnnotation]; name != "" {
		cm, err := c.s.cs.CoreV1().ConfigMaps(wl.meta.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("the ConfigMap %s/%s named by %s: %w", wl.meta.Namespace, name, ConfigAnnotation, err)
		}
		data, ok := cm.Data[ConfigKey]
		if !ok {
			return nil, fmt.Errorf("the ConfigMap %s/%s has no key %s", wl.meta.Namespace, name, ConfigKey)
		}
		path := fmt.Sprintf("ConfigMap %s/%s %s", wl.meta.Namespace, name, ConfigKey)
		layer, err := config.ParseLayer([]byte(data), path)
		if err != nil {
			return nil, err
		}
		if layer.Has("target") {
			return nil, fmt.Errorf("%s: target: the workload is the target; leave it out", path)
		}
		layers = append(layers, layer)
	}
	return config.LoadLayers(layers...)
}

// configError reports a workload's config that cannot be used: in the
// log, on /metrics, in the store, and as an Event on the workload. The
// other workloads are still watched.
func (c *controller) configError(ctx context.Context, wl workload, err error) {
	c.errMu.Lock()
	seen := c.configErrors[wl.key()] == err.Error()
	c.configErrors[wl.key()] = err.Error()
	c.s.metrics.configErrors.Set(float64(len(c.configErrors)))
	c.errMu.Unlock()
	if seen {
		return
	}
	c.s.log.Error("a watched workload's config cannot be used", "workload", wl.String(), "err", err)
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	known, _ := c.s.store.Workload(sctx, wl.meta.Namespace, wl.kind, wl.meta.Name)
	known.Namespace, known.Kind, known.Name, known.ConfigError = wl.meta.Namespace, wl.kind, wl.meta.Name, err.Error()
	if perr := c.s.store.PutWorkload(sctx, known); perr != nil {
		c.s.log.Warn("could not record the config error", "workload", wl.String(), "err", perr)
	}
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: wl.meta.Name + ".deploywatch-", Namespace: wl.meta.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: wl.kind, APIVersion: "apps/v1", Namespace: wl.meta.Namespace, Name: wl.meta.Name, UID: wl.meta.UID},
		Reason:         "DeploywatchConfigError", Type: corev1.EventTypeWarning,
		Message: textutil.Truncate("deploywatch cannot watch this workload: "+err.Error(), 1024),
		Source:  corev1.EventSource{Component: "deploywatch"}, FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if _, err := c.s.cs.CoreV1().Events(wl.meta.Namespace).Create(sctx, ev, metav1.CreateOptions{}); err != nil {
		c.s.log.Warn("could not record the config error as an Event", "workload", wl.String(), "err", err)
	}
}

// configOK clears a workload's config error.
func (c *controller) configOK(wl workload) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if _, ok := c.configErrors[wl.key()]; ok {
		delete(c.configErrors, wl.key())
		c.s.metrics.configErrors.Set(float64(len(c.configErrors)))
	}
}
