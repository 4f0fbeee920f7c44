// Package dora computes, from a service's deploy history, the four DORA
// figures teams report on (deployment frequency, lead time for changes,
// change failure rate, failed deployment recovery time), week by week,
// with the performance bands of the State of DevOps report; and the
// judge's own record: how many of deploywatch's verdicts held up. It does
// no I/O: the history comes in, numbers go out.
package dora

import (
	"math"
	"slices"
	"sort"
	"time"
)

// Deploy is one deploy of the history, as far as the figures need it.
type Deploy struct {
	ID string
	// Service and Environment scope the audit: a release is shown good or
	// bad only by later deploys of the same service to the same place.
	Service         string
	Environment     string
	Version         string
	PreviousVersion string
	// Verdict is stable, failed or inconclusive (in_progress deploys are
	// left out).
	Verdict    string
	StartedAt  time.Time
	EndedAt    time.Time
	DetectedAt *time.Time
	RolledBack bool
	// CommitTime is when the deployed commit was made, when known.
	CommitTime *time.Time
	Labels     []Label
}

// Label is a person's mark on a verdict.
type Label struct {
	Name string // false_rollback, missed_regression, incident
	At   time.Time
}

// Options tune the figures.
type Options struct {
	// From and To bound the window (To default now).
	From, To time.Time
	// MissedWithin is how soon after a stable verdict a rollback of that
	// version shows the verdict missed a regression. Default 24h.
	MissedWithin time.Duration
}

// Report is a service's figures over a window.
type Report struct {
	From, To time.Time
	// Deploys counts the deploys that ended in the window.
	Deploys int
	// Frequency is deploys per day.
	Frequency Figure
	// LeadTime is the median time from commit to the deploy's end, over
	// the stable deploys whose commit time is known.
	LeadTime Figure
	// ChangeFailureRate is the share of deploys (stable or failed) that
	// failed.
	ChangeFailureRate Figure
	// RecoveryTime is the median time from a failed deploy's detection to
	// the end of the next stable one.
	RecoveryTime Figure
	Weeks        []Week
	Judge        Judge
}

// Figure is one figure with the number of deploys it rests on and its
// band. Value is NaN when nothing measured it.
type Figure struct {
	Value   float64
	Samples int
	// Band is elite, high, medium or low; "" without a value.
	Band string
}

// Week is one week's deploys (weeks start on Monday, UTC).
type Week struct {
	Start             time.Time
	Deploys           int
	Failed            int
	ChangeFailureRate float64 // NaN without stable or failed deploys
	LeadTime          float64 // median seconds, NaN when unknown
	RecoveryTime      float64 // median seconds, NaN when unknown
}

// Judge is deploywatch's own record: how its verdicts held up.
type Judge struct {
	// Failed counts the deploys it failed; FalseRollbacks those later
	// shown good (the same version deployed again and stable, or labelled
	// false_rollback).
	Failed         int
	FalseRollbacks []string
	// Stable counts the deploys it found stable; Missed those later shown
	// bad (an incident or missed_regression label, or the version rolled
	// back within MissedWithin).
	Stable int
	Missed []string
	// Inconclusive counts the deploys it could not judge, and
	// InconclusiveShare their share of all.
	Inconclusive      int
	InconclusiveShare float64
	// Precision is the share of its failures that were real; Recall the
	// share of the bad releases it caught. NaN when nothing counts.
	Precision, Recall float64
	// Detection are the times from a failed deploy's start to its
	// detection, in seconds, sorted.
	Detection []float64
}

// The verdicts.
const (
	stable       = "stable"
	failed       = "failed"
	inconclusive = "inconclusive"
)

// Compute computes the report of history (any order) over the window.
func Compute(history []Deploy, o Options) Report {
	if o.To.IsZero() {
		o.To = time.Now()
	}
	if o.MissedWithin <= 0 {
		o.MissedWithin = 24 * time.Hour
	}
	all := slices.Clone(history)
	sort.Slice(all, func(i, j int) bool { return all[i].StartedAt.Before(all[j].StartedAt) })
	var in []Deploy
	for _, d := range all {
		if d.Verdict != stable && d.Verdict != failed && d.Verdict != inconclusive {
			continue
		}
		if !d.EndedAt.Before(o.From) && d.EndedAt.Before(o.To) {
			in = append(in, d)
		}
	}
	r := Report{From: o.From, To: o.To, Deploys: len(in)}
	days := o.To.Sub(o.From).Hours() / 24
	r.Frequency = Figure{Value: nan(), Samples: len(in)}
	if days > 0 {
		r.Frequency.Value = float64(len(in)) / days
		r.Frequency.Band = frequencyBand(r.Frequency.Value)
	}
	leads, recoveries := leadTimes(in), recoveryTimes(all, in)
	r.LeadTime = durationFigure(leads, leadBand)
	r.RecoveryTime = durationFigure(recoveries, recoveryBand)
	r.ChangeFailureRate = Figure{Value: nan()}
	var judged, bad int
	for _, d := range in {
		if d.Verdict == stable || d.Verdict == failed {
			judged++
			if d.Verdict == failed {
				bad++
			}
		}
	}
	if judged > 0 {
		r.ChangeFailureRate = Figure{Value: float64(bad) / float64(judged), Samples: judged}
		r.ChangeFailureRate.Band = failureBand(r.ChangeFailureRate.Value)
	}
	r.Weeks = weeks(all, in, o)
	r.Judge = judge(all, in, o)
	return r
}

// leadTimes are the seconds from commit to end of the stable deploys
// whose commit time is known.
func leadTimes(in []Deploy) []float64 {
	var out []float64
	for _, d := range in {
		if d.Verdict == stable && d.CommitTime != nil && !d.CommitTime.After(d.EndedAt) {
			out = append(out, d.EndedAt.Sub(*d.CommitTime).Seconds())
		}
	}
	return out
}

// recoveryTimes are, for each failed deploy in the window, the seconds
// from its detection (else its start) to the end of the next stable
// deploy of the same service to the same environment.
func recoveryTimes(all, in []Deploy) []float64 {
	var out []float64
	for _, d := range in {
		if d.Verdict != failed {
			continue
		}
		from := d.StartedAt
		if d.DetectedAt != nil {
			from = *d.DetectedAt
		}
		for _, next := range all {
			if sameTarget(next, d) && next.Verdict == stable && next.StartedAt.After(d.StartedAt) {
				out = append(out, next.EndedAt.Sub(from).Seconds())
				break
			}
		}
	}
	return out
}

func durationFigure(secs []float64, band func(float64) string) Figure {
	f := Figure{Value: median(secs), Samples: len(secs)}
	if len(secs) > 0 {
		f.Band = band(f.Value)
	}
	return f
}

// weeks splits the window by week.
func weeks(all, in []Deploy, o Options) []Week {
	start := weekStart(o.From)
	var out []Week
	for ws := start; ws.Before(o.To); ws = ws.AddDate(0, 0, 7) {
		we := ws.AddDate(0, 0, 7)
		var week []Deploy
		for _, d := range in {
			if !d.EndedAt.Before(ws) && d.EndedAt.Before(we) {
				week = append(week, d)
			}
		}
		w := Week{Start: ws, Deploys: len(week), ChangeFailureRate: nan(),
			LeadTime: median(leadTimes(week)), RecoveryTime: median(recoveryTimes(all, week))}
		judged := 0
		for _, d := range week {
			if d.Verdict == failed {
				w.Failed++
			}
			if d.Verdict == failed || d.Verdict == stable {
				judged++
			}
		}
		if judged > 0 {
			w.ChangeFailureRate = float64(w.Failed) / float64(judged)
		}
		out = append(out, w)
	}
	return out
}

func weekStart(t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	back := (int(day.Weekday()) + 6) % 7 // days since Monday
	return day.AddDate(0, 0, -back)
}

// judge is the verdicts' record over the window.
func judge(all, in []Deploy, o Options) Judge {
	j := Judge{Precision: nan(), Recall: nan(), InconclusiveShare: nan()}
	for _, d := range in {
		switch d.Verdict {
		case failed:
			j.Failed++
			if shownFalse(d, all) {
				j.FalseRollbacks = append(j.FalseRollbacks, d.ID)
			}
			if d.DetectedAt != nil {
				j.Detection = append(j.Detection, d.DetectedAt.Sub(d.StartedAt).Seconds())
			}
		case stable:
			j.Stable++
			if shownMissed(d, all, o.MissedWithin) {
				j.Missed = append(j.Missed, d.ID)
			}
		case inconclusive:
			j.Inconclusive++
		}
	}
	if n := len(in); n > 0 {
		j.InconclusiveShare = float64(j.Inconclusive) / float64(n)
	}
	caught := j.Failed - len(j.FalseRollbacks)
	if j.Failed > 0 {
		j.Precision = float64(caught) / float64(j.Failed)
	}
	if caught+len(j.Missed) > 0 {
		j.Recall = float64(caught) / float64(caught+len(j.Missed))
	}
	sort.Float64s(j.Detection)
	return j
}

// shownFalse reports whether a failed deploy was later shown good: its
// version deployed again, unchanged, and stable; or a false_rollback label.
func shownFalse(d Deploy, all []Deploy) bool {
	if hasLabel(d, "false_rollback") {
		return true
	}
	for _, later := range all {
		if sameTarget(later, d) && later.StartedAt.After(d.StartedAt) && later.Version == d.Version && later.Verdict == stable {
			return true
		}
	}
	return false
}

// shownMissed reports whether a stable deploy was later shown bad: an
// incident or missed_regression label, or a deploy back to the version
// before it within the time.
func shownMissed(d Deploy, all []Deploy, within time.Duration) bool {
	if hasLabel(d, "missed_regression") || hasLabel(d, "incident") {
		return true
	}
	for _, later := range all {
		if sameTarget(later, d) && later.StartedAt.After(d.StartedAt) && later.StartedAt.Sub(d.EndedAt) <= within &&
			d.PreviousVersion != "" && later.Version == d.PreviousVersion && later.PreviousVersion == d.Version {
			return true
		}
	}
	return false
}

// sameTarget reports whether two deploys are of the same service to the
// same environment.
func sameTarget(a, b Deploy) bool { return a.Service == b.Service && a.Environment == b.Environment }

func hasLabel(d Deploy, name string) bool {
	return slices.ContainsFunc(d.Labels, func(l Label) bool { return l.Name == name })
}

// Bands of the 2024 State of DevOps report, as commonly summarised.
const BandsYear = 2024

func frequencyBand(perDay float64) string {
	switch {
	case perDay >= 1:
		return "elite" // on demand: daily or more
	case perDay >= 1.0/7:
		return "high" // daily to weekly
	case perDay >= 1.0/30:
		return "medium" // weekly to monthly
	}
	return "low"
}

func leadBand(secs float64) string {
	switch {
	case secs < 86400:
		return "elite"
	case secs < 7*86400:
		return "high"
	case secs < 30*86400:
		return "medium"
	}
	return "low"
}

func recoveryBand(secs float64) string {
	switch {
	case secs < 3600:
		return "elite"
	case secs < 86400:
		return "high" // the report puts high and medium under a day
	case secs < 7*86400:
		return "medium"
	}
	return "low"
}

// failureBand is the nearest of the report's clusters, which are not
// monotonic in this figure: elite about 5%, medium 10%, high 20%, low 40%.
func failureBand(rate float64) string {
	clusters := []struct {
		band string
		at   float64
	}{{"elite", 0.05}, {"medium", 0.10}, {"high", 0.20}, {"low", 0.40}}
	best := clusters[0]
	for _, c := range clusters {
		if math.Abs(rate-c.at) < math.Abs(rate-best.at) {
			best = c
		}
	}
	return best.band
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return nan()
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Quantile is the q-quantile of sorted values (nearest rank), NaN when
// there are none.
func Quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return nan()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func nan() float64 { return math.NaN() }
