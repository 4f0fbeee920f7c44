package dashboard

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/watch"
)

type deployPage struct {
	page
	D       row
	Reason  string
	Labels  []store.Label
	Report  *watch.Report
	Bands   []band
	Moments []moment
	// From and To are the span the timeline and charts cover.
	From, To time.Time
	// Checks are the evidence, the deciding check first.
	Checks     []evidence
	Pods       *evidence
	Verify     []watch.VerifyItem
	Skipped    []watch.SkippedCheck
	Rollback   *watch.RollbackRecord
	Deliveries []watch.Delivery
	Events     []eventLine
	// MoreEvents counts the events left out of the log.
	MoreEvents int
	// Live is set while the watch runs: the page follows its events.
	Live      bool
	EventsURL string
	LiveURL   string
}

// evidence is a check's standing with everything it rests on.
type evidence struct {
	*watch.CheckResult
	Deciding bool
	Chart    *chart
}

type eventLine struct {
	At      time.Time
	Kind    string
	Phase   string
	Message string
}

// maxEventLines bounds the event log shown on the page.
const maxEventLines = 200

// deploy is /deploys/{id}: one deploy, live while it is watched.
func (d *Dashboard) deploy(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if len(id) > 64 {
		d.fail(w, r, store.ErrNotFound)
		return
	}
	dep, err := d.o.History.Deploy(r.Context(), id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	events, err := d.o.History.Events(r.Context(), id, 0)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	labels, err := d.o.History.Labels(r.Context(), []string{id})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	p, err := d.deployPage(r, dep, events, labels[id])
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if r.URL.Query().Get("fragment") == "live" {
		d.render(w, r, http.StatusOK, "deploy", "live", p)
		return
	}
	d.render(w, r, http.StatusOK, "deploy", "", p)
}

func (d *Dashboard) deployPage(r *http.Request, dep store.Deploy, events []store.Event, labels []store.Label) (deployPage, error) {
	now := d.o.Now()
	p := deployPage{page: d.page(r, dep.Service+" "+dep.Version, ""), D: rowOf(dep, now), Reason: dep.Reason, Labels: labels,
		Live: dep.Verdict == store.InProgress}
	if len(dep.Report) > 0 {
		var rep watch.Report
		if err := json.Unmarshal(dep.Report, &rep); err != nil {
			return p, errors.New("the stored report cannot be read: " + err.Error())
		}
		p.Report = &rep
	}
	series, lines, phases, last := readEvents(events)
	p.Events, p.MoreEvents = lines, max(0, len(events)-len(lines))
	if p.Live {
		p.EventsURL = "/api/v1/deploys/" + dep.ID + "/events?after=" + strconv.FormatInt(last, 10)
		p.LiveURL = "/deploys/" + dep.ID + "?fragment=live"
	}

	// The phases: the report's, else as the events tell them.
	rep := p.Report
	if rep != nil && len(rep.Phases) > 0 {
		phases = rep.Phases
	}
	p.From = dep.StartedAt
	if len(phases) > 0 && phases[0].StartedAt.Before(p.From) {
		p.From = phases[0].StartedAt
	}
	switch {
	case dep.EndedAt != nil:
		p.To = *dep.EndedAt
	case p.Live:
		p.To = now
	case len(phases) > 0 && phases[len(phases)-1].EndedAt != nil:
		p.To = *phases[len(phases)-1].EndedAt
	default:
		p.To = dep.UpdatedAt
	}
	for _, ph := range phases {
		if ph.EndedAt != nil && ph.EndedAt.After(p.To) {
			p.To = *ph.EndedAt
		}
	}
	p.Bands = timeline(phases, p.From, p.To)
	p.Moments = moments(phases, dep.DetectedAt)

	if rep == nil {
		return p, nil
	}
	p.Verify, p.Skipped, p.Rollback, p.Deliveries = rep.Verify, rep.Skipped, rep.Rollback, rep.Deliveries
	deciding := decidingCheck(rep)
	for _, c := range rep.Checks {
		ev := evidence{CheckResult: c, Deciding: c.Name == deciding}
		if c.Name == watch.PodsCheck {
			p.Pods = &ev
			continue
		}
		ch := newChart(c, series[c.Name], p.From, p.To, p.Moments)
		ev.Chart = &ch
		p.Checks = append(p.Checks, ev)
	}
	slices.SortStableFunc(p.Checks, func(a, b evidence) int { return rank(a) - rank(b) })
	return p, nil
}

// readEvents takes from the stored events each check's measurements, the
// log lines, the phases (for a deploy whose report has none yet) and the
// last event's number.
func readEvents(events []store.Event) (series map[string][]sample, lines []eventLine, phases []*watch.PhaseRecord, last int64) {
	series = map[string][]sample{}
	open := map[string]*watch.PhaseRecord{}
	for _, se := range events {
		last = se.Seq
		var e watch.Event
		if err := json.Unmarshal(se.Data, &e); err != nil {
			continue // one unreadable event does not hide the others
		}
		switch e.Kind {
		case event.Measured:
			for _, c := range e.Checks {
				v := math.NaN()
				if c.Value != nil {
					v = *c.Value
				}
				series[c.Name] = append(series[c.Name], sample{At: e.Time, Value: v, Status: c.Verdict})
			}
		case event.PhaseStarted:
			ph := &watch.PhaseRecord{Name: e.Phase, StartedAt: e.Time}
			open[e.Phase] = ph
			phases = append(phases, ph)
		case event.PhaseEnded:
			if ph := open[e.Phase]; ph != nil {
				t := e.Time
				ph.EndedAt, ph.Outcome, ph.Reason = &t, e.Outcome, e.Message
			}
		}
		if e.Kind != event.Measured && e.Kind != event.HookOutput {
			lines = append(lines, eventLine{At: e.Time, Kind: string(e.Kind), Phase: e.Phase, Message: e.Message})
		}
	}
	if len(lines) > maxEventLines {
		lines = lines[len(lines)-maxEventLines:]
	}
	slices.Reverse(lines) // newest first
	return series, lines, phases, last
}

// moments are the times marked on the charts.
func moments(phases []*watch.PhaseRecord, detected *time.Time) []moment {
	var out []moment
	for _, p := range phases {
		switch p.Name {
		case watch.PhaseRollout:
			out = append(out, moment{At: p.StartedAt, Class: "deploy", Label: "deploy"})
		case watch.PhaseWarmup:
			if p.EndedAt != nil {
				out = append(out, moment{At: *p.EndedAt, Class: "warmup", Label: "warm-up ends"})
			}
		case watch.PhaseRollback:
			out = append(out, moment{At: p.StartedAt, Class: "rollback", Label: "rollback"})
		}
	}
	if detected != nil {
		out = append(out, moment{At: *detected, Class: "detected", Label: "detected"})
	}
	return out
}

// decidingCheck names the check the verdict rests on: the reason starts
// with it ("error_rate: 5.2% ...").
func decidingCheck(rep *watch.Report) string {
	for _, c := range rep.Checks {
		if strings.HasPrefix(rep.Reason, c.Name+":") || strings.HasPrefix(rep.Reason, c.Name+" ") {
			return c.Name
		}
	}
	return ""
}

// rank orders the evidence: the deciding check, then by how bad.
func rank(e evidence) int {
	if e.Deciding {
		return 0
	}
	switch e.Verdict {
	case judge.Fail:
		return 1
	case judge.Error:
		return 2
	case judge.Warn:
		return 3
	case judge.NoData:
		return 4
	}
	return 5
}
