// Package storetest is the conformance suite every store backend passes:
// the same tests, run against SQLite and a real PostgreSQL.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/store"
)

// Run runs the suite. open returns an empty store of the backend; the
// suite closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"a deploy is recorded once per key", createIsIdempotent},
		{"checkpoints keep the state and the report", checkpoints},
		{"events are numbered in order and read after a seq", events},
		{"listing filters, orders newest first and pages with a cursor", listing},
		{"in progress lists the watches to take up", inProgress},
		{"workloads are remembered", workloads},
		{"retention prunes ended deploys and their events", prune},
		{"concurrent writers lose nothing", concurrentWriters},
		{"missing things are ErrNotFound", notFound},
		{"events numbered by their sender are taken once", putEvents},
		{"labels mark verdicts", labels},
		{"services sum the history", services},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newDeploy(key string, started time.Time) store.Deploy {
	return store.Deploy{
		Key: key, Source: "serve", Service: "api", Environment: "prod", Namespace: "shop", Kind: "Deployment",
		Workload: "api", Version: "v2", PreviousVersion: "1", Revision: "2", TriggeredBy: "ci",
		StartedAt: started, State: []byte(`{"state_version":1}`), Report: []byte(`{"verdict":"in_progress"}`),
	}
}

func mustCreate(t *testing.T, s store.Store, d store.Deploy) store.Deploy {
	t.Helper()
	got, created, err := s.CreateDeploy(context.Background(), d)
	if err != nil || !created {
		t.Fatalf("create %s: created %v, %v", d.Key, created, err)
	}
	return got
}

func createIsIdempotent(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := mustCreate(t, s, newDeploy("shop/Deployment/api@2", t0))
	if first.ID == "" || first.Verdict != store.InProgress || !first.StartedAt.Equal(t0) || first.Service != "api" {
		t.Fatalf("created %+v", first)
	}
	again, created, err := s.CreateDeploy(ctx, newDeploy("shop/Deployment/api@2", t0.Add(time.Second)))
	if err != nil || created || again.ID != first.ID || !again.StartedAt.Equal(t0) {
		t.Fatalf("a second create of the key: created %v, id %s (first %s), %v", created, again.ID, first.ID, err)
	}
	page, err := s.ListDeploys(ctx, store.Query{})
	if err != nil || len(page.Deploys) != 1 {
		t.Fatalf("%d deploys after two creates of one key: %v", len(page.Deploys), err)
	}
}

func checkpoints(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := mustCreate(t, s, newDeploy("k", t0))
	detected, ended := t0.Add(9*time.Second), t0.Add(10*time.Second)
	p := store.Progress{Verdict: store.Failed, Reason: "error_rate: 5% > 1%", PreviousVersion: "1", DetectedAt: &detected,
		EndedAt: &ended, RolledBack: true, RollbackOK: true, Owner: "replica-a",
		Report: []byte(`{"verdict":"failed","reason":"error_rate: 5% > 1% <b>"}`), State: []byte(`{"state_version":1,"x":"é"}`)}
	if err := s.Checkpoint(ctx, d.ID, p); err != nil {
		t.Fatal(err)
	}
	got, err := s.Deploy(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != store.Failed || got.Reason != p.Reason || !got.DetectedAt.Equal(detected) || !got.EndedAt.Equal(ended) ||
		!got.RolledBack || !got.RollbackOK || got.Owner != "replica-a" || string(got.Report) != string(p.Report) || string(got.State) != string(p.State) {
		t.Fatalf("after a checkpoint: %+v", got)
	}
	if got.UpdatedAt.IsZero() {
		t.Error("updated_at not set")
	}
}

func events(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := mustCreate(t, s, newDeploy("k", t0))
	batch := func(kinds ...string) []store.Event {
		var out []store.Event
		for i, k := range kinds {
			out = append(out, store.Event{Time: t0.Add(time.Duration(i) * time.Second), Kind: k, Data: []byte(fmt.Sprintf(`{"event":%q}`, k))})
		}
		return out
	}
	if err := s.AppendEvents(ctx, d.ID, batch("phase_started", "started")); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvents(ctx, d.ID, batch("measured", "verdict")); err != nil {
		t.Fatal(err)
	}
	all, err := s.Events(ctx, d.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for i, e := range all {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		kinds = append(kinds, e.Kind)
	}
	if !slices.Equal(kinds, []string{"phase_started", "started", "measured", "verdict"}) {
		t.Fatalf("events %v", kinds)
	}
	after, err := s.Events(ctx, d.ID, 2)
	if err != nil || len(after) != 2 || after[0].Seq != 3 || string(after[1].Data) != `{"event":"verdict"}` {
		t.Fatalf("after seq 2: %+v, %v", after, err)
	}
}

func listing(t *testing.T, s store.Store) {
	ctx := context.Background()
	services := []string{"api", "web", "api", "api", "web", "api", "api"}
	var ids []string
	for i, svc := range services {
		d := newDeploy(fmt.Sprintf("k%d", i), t0.Add(time.Duration(i)*time.Minute))
		d.Service = svc
		if i == 3 {
			d.StartedAt = t0.Add(2 * time.Minute) // the same start as k2: the id breaks the tie
		}
		ids = append(ids, mustCreate(t, s, d).ID)
	}
	var got []string
	q := store.Query{Service: "api", Limit: 2}
	for pages := 0; ; pages++ {
		page, err := s.ListDeploys(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Deploys {
			if d.Service != "api" {
				t.Fatalf("filter by service gave %s", d.Service)
			}
			if len(d.Report) != 0 || len(d.State) != 0 {
				t.Fatal("a listing carries reports")
			}
			got = append(got, d.Key)
		}
		if page.Next == "" {
			break
		}
		if pages > 10 {
			t.Fatal("the listing does not end")
		}
		q.Cursor = page.Next
	}
	want := []string{"k6", "k5", "k3", "k2", "k0"}
	if ids[3] < ids[2] {
		want = []string{"k6", "k5", "k2", "k3", "k0"}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged listing %v, want %v", got, want)
	}
	page, err := s.ListDeploys(ctx, store.Query{Since: t0.Add(4 * time.Minute), Until: t0.Add(6 * time.Minute)})
	if err != nil || len(page.Deploys) != 2 || page.Deploys[0].Key != "k5" || page.Deploys[1].Key != "k4" {
		t.Fatalf("since/until: %+v, %v", page.Deploys, err)
	}
	if _, err := s.ListDeploys(ctx, store.Query{Cursor: "not-a-cursor"}); err == nil {
		t.Fatal("a forged cursor was accepted")
	}
	if page, err := s.ListDeploys(ctx, store.Query{Verdict: store.Failed}); err != nil || len(page.Deploys) != 0 {
		t.Fatalf("verdict filter: %d, %v", len(page.Deploys), err)
	}
}

func inProgress(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := mustCreate(t, s, newDeploy("a", t0))
	b := mustCreate(t, s, newDeploy("b", t0.Add(time.Second)))
	ended := t0.Add(time.Minute)
	if err := s.Checkpoint(ctx, a.ID, store.Progress{Verdict: store.Stable, EndedAt: &ended}); err != nil {
		t.Fatal(err)
	}
	got, err := s.InProgress(ctx)
	if err != nil || len(got) != 1 || got[0].ID != b.ID || string(got[0].State) != `{"state_version":1}` {
		t.Fatalf("in progress: %+v, %v", got, err)
	}
}

func workloads(t *testing.T, s store.Store) {
	ctx := context.Background()
	w := store.Workload{Namespace: "shop", Kind: "Deployment", Name: "api", Revision: "uid-1", RevisionNumber: "1", Template: "abc"}
	if err := s.PutWorkload(ctx, w); err != nil {
		t.Fatal(err)
	}
	w.Revision, w.RevisionNumber, w.ConfigError = "uid-2", "2", "ConfigMap shop/api: bad"
	if err := s.PutWorkload(ctx, w); err != nil {
		t.Fatal(err)
	}
	got, err := s.Workload(ctx, "shop", "Deployment", "api")
	if err != nil || got.Revision != "uid-2" || got.RevisionNumber != "2" || got.ConfigError != w.ConfigError || got.Template != "abc" {
		t.Fatalf("workload %+v, %v", got, err)
	}
}

func prune(t *testing.T, s store.Store) {
	ctx := context.Background()
	old := mustCreate(t, s, newDeploy("old", t0))
	running := mustCreate(t, s, newDeploy("running", t0))
	recent := mustCreate(t, s, newDeploy("recent", t0.Add(48*time.Hour)))
	oldEnd, recentEnd := t0.Add(time.Hour), t0.Add(49*time.Hour)
	for _, c := range []struct {
		id  string
		end *time.Time
	}{{old.ID, &oldEnd}, {recent.ID, &recentEnd}} {
		if err := s.Checkpoint(ctx, c.id, store.Progress{Verdict: store.Stable, EndedAt: c.end}); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendEvents(ctx, c.id, []store.Event{{Time: t0, Kind: "verdict", Data: []byte("{}")}}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.Prune(ctx, t0.Add(24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want the one old ended deploy", n, err)
	}
	if _, err := s.Deploy(ctx, old.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the pruned deploy: %v", err)
	}
	if ev, err := s.Events(ctx, old.ID, 0); err != nil || len(ev) != 0 {
		t.Fatalf("the pruned deploy's events: %d, %v", len(ev), err)
	}
	for _, id := range []string{running.ID, recent.ID} {
		if _, err := s.Deploy(ctx, id); err != nil {
			t.Fatalf("kept deploy %s: %v", id, err)
		}
	}
}

// concurrentWriters checkpoints and appends from many goroutines at once,
// as several watches of one replica do.
func concurrentWriters(t *testing.T, s store.Store) {
	ctx := context.Background()
	const deploys, events = 8, 25
	var ids []string
	for i := range deploys {
		ids = append(ids, mustCreate(t, s, newDeploy(fmt.Sprintf("c%d", i), t0.Add(time.Duration(i)*time.Second))).ID)
	}
	var wg sync.WaitGroup
	errs := make(chan error, deploys*events*2)
	for _, id := range ids {
		wg.Go(func() {
			for i := range events {
				if err := s.AppendEvents(ctx, id, []store.Event{{Time: t0, Kind: "measured", Data: []byte(fmt.Sprintf(`{"i":%d}`, i))}}); err != nil {
					errs <- err
				}
				if err := s.Checkpoint(ctx, id, store.Progress{Verdict: store.InProgress, State: []byte(fmt.Sprintf(`{"tick":%d}`, i))}); err != nil {
					errs <- err
				}
			}
		})
	}
	// Creating more deploys meanwhile, some of the same key.
	for i := range deploys {
		wg.Go(func() {
			if _, _, err := s.CreateDeploy(ctx, newDeploy(fmt.Sprintf("race%d", i%2), t0)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, id := range ids {
		ev, err := s.Events(ctx, id, 0)
		if err != nil || len(ev) != events {
			t.Fatalf("deploy %s has %d events, want %d: %v", id, len(ev), events, err)
		}
		d, err := s.Deploy(ctx, id)
		if err != nil || string(d.State) != fmt.Sprintf(`{"tick":%d}`, events-1) {
			t.Fatalf("deploy %s state %s, %v", id, d.State, err)
		}
	}
	page, err := s.ListDeploys(ctx, store.Query{Limit: 500})
	if err != nil || len(page.Deploys) != deploys+2 {
		t.Fatalf("%d deploys, want %d: %v", len(page.Deploys), deploys+2, err)
	}
}

func notFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.Deploy(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Deploy: %v", err)
	}
	if err := s.Checkpoint(ctx, "nope", store.Progress{Verdict: store.Stable}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Checkpoint: %v", err)
	}
	if _, err := s.Workload(ctx, "a", "Deployment", "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Workload: %v", err)
	}
}

func putEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := mustCreate(t, s, newDeploy("k", t0))
	batch := []store.Event{{Seq: 1, Time: t0, Kind: "started", Data: []byte(`{"n":1}`)}, {Seq: 2, Time: t0, Kind: "phase_started", Data: []byte(`{"n":2}`)}}
	for range 2 { // the second is a retry whose answer was lost
		if err := s.PutEvents(ctx, d.ID, batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutEvents(ctx, d.ID, []store.Event{{Seq: 2, Time: t0, Kind: "other", Data: []byte(`{}`)}, {Seq: 3, Time: t0, Kind: "verdict", Data: []byte(`{"n":3}`)}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Events(ctx, d.ID, 0)
	if err != nil || len(got) != 3 || got[1].Kind != "phase_started" || got[2].Kind != "verdict" {
		t.Fatalf("events %+v, %v", got, err)
	}
}

func labels(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := mustCreate(t, s, newDeploy("a", t0))
	b := mustCreate(t, s, newDeploy("b", t0))
	incident := t0.Add(time.Hour)
	for _, l := range []store.Label{
		{DeployID: a.ID, Label: store.LabelFalseRollback, At: t0, Who: "oncall"},
		{DeployID: a.ID, Label: store.LabelIncident, At: incident, Note: "<b>paged</b>"},
		{DeployID: b.ID, Label: store.LabelMissedRegression, At: t0},
	} {
		if err := s.AddLabel(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddLabel(ctx, store.Label{DeployID: "nope", Label: store.LabelIncident, At: t0}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a label of no deploy: %v", err)
	}
	got, err := s.Labels(ctx, []string{a.ID, b.ID, "nope"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got[a.ID]) != 2 || got[a.ID][0].Label != store.LabelFalseRollback || got[a.ID][0].Who != "oncall" ||
		!got[a.ID][1].At.Equal(incident) || got[a.ID][1].Note != "<b>paged</b>" || len(got[b.ID]) != 1 || len(got["nope"]) != 0 {
		t.Fatalf("labels %+v", got)
	}
}

func services(t *testing.T, s store.Store) {
	ctx := context.Background()
	commit := t0.Add(-time.Hour)
	for i, svc := range []string{"api", "api", "web"} {
		d := newDeploy(fmt.Sprintf("k%d", i), t0.Add(time.Duration(i)*time.Minute))
		d.Service = svc
		if i == 1 {
			d.Environment = "staging"
			d.CommitTime = &commit
		}
		mustCreate(t, s, d)
	}
	got, err := s.Services(ctx)
	if err != nil || len(got) != 2 || got[0].Name != "web" || got[1].Name != "api" || got[1].Deploys != 2 ||
		fmt.Sprint(got[1].Environments) != "[prod staging]" || !got[1].LastDeploy.Equal(t0.Add(time.Minute)) {
		t.Fatalf("services %+v, %v", got, err)
	}
	page, err := s.ListDeploys(ctx, store.Query{Environment: "staging"})
	if err != nil || len(page.Deploys) != 1 || page.Deploys[0].CommitTime == nil || !page.Deploys[0].CommitTime.Equal(commit) {
		t.Fatalf("the commit time: %+v, %v", page.Deploys, err)
	}
}
