package server

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// elect campaigns for the Lease until ctx ends, and runs the controller
// while it leads. When ctx ends the controller's watches are stopped
// first (a rollback under way is finished), then the lease is released at
// once, so the next replica takes over without waiting for it to expire.
func (s *Server) elect(ctx context.Context) {
	le := s.cfg.LeaderElection
	for ctx.Err() == nil {
		lock := &resourcelock.LeaseLock{
			LeaseMeta:  metaOf(le.Namespace, le.Name),
			Client:     s.cs.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: s.identity},
		}
		// The elector's context ends only after the term's watches have
		// stopped: releasing the lease earlier would let another replica
		// take a watch up while this one still finishes its rollback.
		electCtx, stopElecting := context.WithCancel(context.WithoutCancel(ctx))
		termDone := make(chan struct{})
		go func() {
			select {
			case <-ctx.Done():
			case <-termDone:
			}
			stopElecting()
		}()
		elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   le.LeaseDuration.D(),
			RenewDeadline:   le.RenewDeadline.D(),
			RetryPeriod:     le.RetryPeriod.D(),
			ReleaseOnCancel: true,
			Name:            "deploywatch",
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(termCtx context.Context) {
					s.log.Info("leading: watching the workloads", "identity", s.identity)
					// The term ends when the lease is lost or this replica
					// stops.
					lctx, cancel := context.WithCancel(termCtx)
					go func() {
						select {
						case <-ctx.Done():
						case <-lctx.Done():
						}
						cancel()
					}()
					s.lead(lctx)
					close(termDone)
				},
				OnStoppedLeading: func() { s.log.Info("no longer leading", "identity", s.identity) },
				OnNewLeader: func(id string) {
					if id != s.identity {
						s.log.Info("following", "leader", id)
					}
				},
			},
		})
		if err != nil {
			s.log.Error("leader election", "err", err)
			return
		}
		elector.Run(electCtx)
		stopElecting()
		// A lost lease ends the term; campaign again unless stopping.
		select {
		case <-ctx.Done():
		case <-time.After(le.RetryPeriod.D()):
		}
	}
}

func metaOf(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}
