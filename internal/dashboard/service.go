package dashboard

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/dora"
	"github.com/deploywatch/deploywatch/internal/store"
)

// figureView is one DORA figure as a card shows it.
type figureView struct {
	Name, Value, Band, Help string
	Samples                 int
}

type weekView struct {
	Start                                     time.Time
	Deploys, Failed                           int
	ChangeFailureRate, LeadTime, RecoveryTime string
}

// judgeView is the judge's record.
type judgeView struct {
	Failed, Stable, Inconclusive, Total int
	FalseRollbacks, Missed              []deployLink
	InconclusiveShare                   string
	Precision, Recall                   string
	Detections                          int
	DetectionP50, DetectionP90          string
	Histogram                           barChart
}

type deployLink struct{ ID, Label string }

type option struct {
	Value, Label string
	Selected     bool
}

type servicePage struct {
	page
	Service      string
	Environment  string
	Environments []option
	Windows      []option
	Window       string
	From, To     time.Time
	Deploys      int
	BandsYear    int
	Figures      []figureView
	Weeks        []weekView
	WeekChart    barChart
	Judge        judgeView
	Recent       []row
}

// windows are the spans a service page offers.
var windows = []string{"7d", "30d", "90d", "365d"}

func windowOf(r *http.Request) (string, time.Duration, error) {
	w := r.URL.Query().Get("window")
	if w == "" {
		w = "30d"
	}
	if !slices.Contains(windows, w) {
		return "", 0, badRequest{"window", "want 7d, 30d, 90d or 365d"}
	}
	d, err := config.ParseDuration(w)
	return w, d, err
}

// service is /services/{service}: its deploys over time, its DORA
// figures, and how the judge's verdicts on it held up.
func (d *Dashboard) service(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("service")
	env := r.URL.Query().Get("environment")
	win, window, err := windowOf(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	svcs, err := d.o.History.Services(r.Context())
	if err != nil {
		d.fail(w, r, err)
		return
	}
	i := slices.IndexFunc(svcs, func(s store.Service) bool { return s.Name == name })
	if i < 0 {
		d.fail(w, r, store.ErrNotFound)
		return
	}
	rep, err := d.o.DORA(r.Context(), name, env, window)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	recent, err := d.o.History.ListDeploys(r.Context(), store.Query{Service: name, Environment: env, Limit: 20})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	now := d.o.Now()
	p := servicePage{page: d.page(r, name, ""), Service: name, Environment: env, Window: win, From: rep.From, To: rep.To,
		Deploys: rep.Deploys, BandsYear: dora.BandsYear}
	p.Environments = append(p.Environments, option{Value: "", Label: "All environments", Selected: env == ""})
	for _, e := range svcs[i].Environments {
		p.Environments = append(p.Environments, option{Value: e, Label: e, Selected: e == env})
	}
	for _, wv := range windows {
		p.Windows = append(p.Windows, option{Value: wv, Label: "Last " + wv, Selected: wv == win})
	}
	labels := map[string]string{}
	for _, dep := range recent.Deploys {
		rw := rowOf(dep, now)
		p.Recent = append(p.Recent, rw)
		labels[dep.ID] = dep.Version
	}
	p.Figures = figures(rep)
	p.Weeks, p.WeekChart = weeks(rep)
	p.Judge = judgeOf(rep.Judge, labels)
	d.render(w, r, http.StatusOK, "service", "", p)
}

func figures(rep dora.Report) []figureView {
	dur := func(f dora.Figure) string {
		if v := finite(f.Value); v != nil {
			return human(time.Duration(*v * float64(time.Second)))
		}
		return "—"
	}
	freq := "—"
	if v := finite(rep.Frequency.Value); v != nil {
		switch {
		case *v >= 1:
			freq = strconv.FormatFloat(*v, 'f', 1, 64) + " a day"
		case *v*7 >= 1:
			freq = strconv.FormatFloat(*v*7, 'f', 1, 64) + " a week"
		default:
			freq = strconv.FormatFloat(*v*30, 'f', 1, 64) + " a month"
		}
	}
	return []figureView{
		{Name: "Deployment frequency", Value: freq, Band: rep.Frequency.Band, Samples: rep.Frequency.Samples,
			Help: "Deploys that ended in the window."},
		{Name: "Lead time for changes", Value: dur(rep.LeadTime), Band: rep.LeadTime.Band, Samples: rep.LeadTime.Samples,
			Help: "Median from commit to a stable deploy, where the commit time is known."},
		{Name: "Change failure rate", Value: pct(finite(rep.ChangeFailureRate.Value)), Band: rep.ChangeFailureRate.Band,
			Samples: rep.ChangeFailureRate.Samples, Help: "Failed or rolled-back deploys over all judged deploys."},
		{Name: "Failed deployment recovery time", Value: dur(rep.RecoveryTime), Band: rep.RecoveryTime.Band, Samples: rep.RecoveryTime.Samples,
			Help: "Median from a failed deploy's detection to the next stable one."},
	}
}

func weeks(rep dora.Report) ([]weekView, barChart) {
	var out []weekView
	var labels []string
	var all, failed []int
	for _, w := range rep.Weeks {
		sec := func(v float64) string {
			if f := finite(v); f != nil {
				return human(time.Duration(*f * float64(time.Second)))
			}
			return "—"
		}
		out = append(out, weekView{Start: w.Start, Deploys: w.Deploys, Failed: w.Failed,
			ChangeFailureRate: pct(finite(w.ChangeFailureRate)), LeadTime: sec(w.LeadTime), RecoveryTime: sec(w.RecoveryTime)})
		labels = append(labels, w.Start.UTC().Format("Jan 2"))
		all = append(all, w.Deploys)
		failed = append(failed, w.Failed)
	}
	chart := bars("Deploys per week, the failed part in red", labels, all, nil, func(i int) string {
		return fmt.Sprintf("week of %s: %d deploys, %d failed", labels[i], all[i], failed[i])
	})
	// The failed part of each week's bar, drawn over it.
	for i := range chart.Bars {
		if all[i] > 0 {
			h := chart.Bars[i].H * float64(failed[i]) / float64(all[i])
			chart.Bars[i].Y2, chart.Bars[i].H2 = round(barBase-h), round(h)
		}
	}
	slices.Reverse(out) // newest first in the table
	return out, chart
}

// detectionBuckets group detection times for the histogram.
var detectionBuckets = []struct {
	upTo  float64
	label string
}{{15, "< 15s"}, {30, "15–30s"}, {60, "30s–1m"}, {120, "1–2m"}, {300, "2–5m"}, {900, "5–15m"}, {1e18, "≥ 15m"}}

func judgeOf(j dora.Judge, versions map[string]string) judgeView {
	link := func(ids []string) []deployLink {
		var out []deployLink
		for _, id := range ids {
			l := deployLink{ID: id, Label: shortID(id)}
			if v := versions[id]; v != "" {
				l.Label = v
			}
			out = append(out, l)
		}
		return out
	}
	v := judgeView{Failed: j.Failed, Stable: j.Stable, Inconclusive: j.Inconclusive, Total: j.Failed + j.Stable + j.Inconclusive,
		FalseRollbacks: link(j.FalseRollbacks), Missed: link(j.Missed),
		InconclusiveShare: pct(finite(j.InconclusiveShare)), Precision: pct(finite(j.Precision)), Recall: pct(finite(j.Recall)),
		Detections: len(j.Detection), DetectionP50: "—", DetectionP90: "—"}
	if len(j.Detection) > 0 {
		v.DetectionP50 = human(time.Duration(dora.Quantile(j.Detection, 0.5) * float64(time.Second)))
		v.DetectionP90 = human(time.Duration(dora.Quantile(j.Detection, 0.9) * float64(time.Second)))
	}
	counts := make([]int, len(detectionBuckets))
	labels := make([]string, len(detectionBuckets))
	for i, b := range detectionBuckets {
		labels[i] = b.label
	}
	for _, s := range j.Detection {
		for i, b := range detectionBuckets {
			if s < b.upTo {
				counts[i]++
				break
			}
		}
	}
	v.Histogram = bars("How long detection took, failures per time range", labels, counts, nil, func(i int) string { return fmt.Sprintf("%s: %d detections", labels[i], counts[i]) })
	if len(j.Detection) == 0 {
		v.Histogram.Empty = true
	}
	return v
}

// judgeRow is one service's record on the judge page.
type judgeRow struct {
	Service string
	Judge   judgeView
}

type judgePage struct {
	page
	Window   string
	Windows  []option
	Overall  judgeView
	Services []judgeRow
}

// judge is /judge: how deploywatch's verdicts held up, overall and per
// service.
func (d *Dashboard) judge(w http.ResponseWriter, r *http.Request) {
	win, window, err := windowOf(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	overall, err := d.o.DORA(r.Context(), "", "", window)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	svcs, err := d.o.History.Services(r.Context())
	if err != nil {
		d.fail(w, r, err)
		return
	}
	p := judgePage{page: d.page(r, "The judge's record", "judge"), Window: win, Overall: judgeOf(overall.Judge, nil)}
	for _, wv := range windows {
		p.Windows = append(p.Windows, option{Value: wv, Label: "Last " + wv, Selected: wv == win})
	}
	for _, s := range svcs {
		rep, err := d.o.DORA(r.Context(), s.Name, "", window)
		if err != nil {
			d.fail(w, r, err)
			return
		}
		if rep.Judge.Failed+rep.Judge.Stable+rep.Judge.Inconclusive == 0 {
			continue
		}
		p.Services = append(p.Services, judgeRow{Service: s.Name, Judge: judgeOf(rep.Judge, nil)})
	}
	d.render(w, r, http.StatusOK, "judge", "", p)
}
