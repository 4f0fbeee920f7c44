package dashboard

import (
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/deploywatch/deploywatch/internal/store"
)

// row is a deploy as the lists show it.
type row struct {
	ID, Verdict, Reason                  string
	Service, Environment, Namespace      string
	Version, PreviousVersion             string
	TriggeredBy, Source                  string
	StartedAt                            time.Time
	StartedAgo                           string
	Running                              bool
	Duration, DetectedAfter              string
	Rollback, RollbackClass, CommitAhead string
}

func rowOf(d store.Deploy, now time.Time) row {
	r := row{ID: d.ID, Verdict: d.Verdict, Reason: d.Reason, Service: d.Service, Environment: d.Environment, Namespace: d.Namespace,
		Version: d.Version, PreviousVersion: d.PreviousVersion, TriggeredBy: d.TriggeredBy, Source: d.Source,
		StartedAt: d.StartedAt, StartedAgo: ago(d.StartedAt, now), Running: d.Verdict == store.InProgress}
	switch {
	case d.EndedAt != nil:
		r.Duration = human(d.EndedAt.Sub(d.StartedAt))
	case r.Running:
		r.Duration = human(now.Sub(d.StartedAt)) + " so far"
	}
	if d.DetectedAt != nil {
		r.DetectedAfter = human(d.DetectedAt.Sub(d.StartedAt))
	}
	switch {
	case d.RolledBack && d.RollbackOK:
		r.Rollback, r.RollbackClass = "Rolled back", "ok"
	case d.RolledBack:
		r.Rollback, r.RollbackClass = "Rollback failed", "bad"
	}
	if d.CommitTime != nil {
		r.CommitAhead = human(d.StartedAt.Sub(*d.CommitTime))
	}
	return r
}

// filter is the list's query.
type filter struct {
	Service, Environment, Verdict string
	Cursor                        string
}

// query is the filter as a URL query, without the cursor.
func (f filter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"service": f.Service, "environment": f.Environment, "verdict": f.Verdict} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

var verdicts = []string{store.InProgress, store.Stable, store.Failed, store.Inconclusive}

type deploysPage struct {
	page
	Filter   filter
	Services []string
	Verdicts []string
	Rows     []row
	// Next is the URL of the older page; First the newest.
	Next, First string
	// RowsURL is the fragment a live list fetches again.
	RowsURL  string
	Filtered bool
}

// deploys is /: the newest deploys, filterable, live.
func (d *Dashboard) deploys(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := filter{Service: q.Get("service"), Environment: q.Get("environment"), Verdict: q.Get("verdict"), Cursor: q.Get("cursor")}
	if f.Verdict != "" && !slices.Contains(verdicts, f.Verdict) {
		d.fail(w, r, badRequest{"verdict", "want in_progress, stable, failed or inconclusive"})
		return
	}
	for name, v := range map[string]string{"service": f.Service, "environment": f.Environment, "cursor": f.Cursor} {
		if len(v) > 500 {
			d.fail(w, r, badRequest{name, "too long"})
			return
		}
	}
	pg, err := d.o.History.ListDeploys(r.Context(), store.Query{Service: f.Service, Environment: f.Environment, Verdict: f.Verdict,
		Limit: 50, Cursor: f.Cursor})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	now := d.o.Now()
	p := deploysPage{page: d.page(r, "Deploys", "deploys"), Filter: f, Verdicts: verdicts,
		Filtered: f.Service != "" || f.Environment != "" || f.Verdict != ""}
	for _, dep := range pg.Deploys {
		p.Rows = append(p.Rows, rowOf(dep, now))
	}
	base := f.query()
	if pg.Next != "" {
		next := f.query()
		next.Set("cursor", pg.Next)
		p.Next = "/?" + next.Encode()
	}
	if f.Cursor != "" {
		p.First = "/?" + base.Encode()
	} else {
		rows := f.query()
		rows.Set("fragment", "rows")
		p.RowsURL = "/?" + rows.Encode()
	}
	if q.Get("fragment") == "rows" {
		d.render(w, r, http.StatusOK, "deploys", "rows", p)
		return
	}
	svcs, err := d.o.History.Services(r.Context())
	if err != nil {
		d.fail(w, r, err)
		return
	}
	for _, s := range svcs {
		p.Services = append(p.Services, s.Name)
	}
	d.render(w, r, http.StatusOK, "deploys", "", p)
}
