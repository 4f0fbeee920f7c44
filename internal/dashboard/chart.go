package dashboard

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// The charts are SVG drawn on the server: the geometry is computed here,
// the templates only place it. Coordinates are in the viewBox.
const (
	chartW, chartH           = 960.0, 250.0
	padLeft, padRight        = 64.0, 120.0
	padTop, padBottom        = 44.0, 28.0
	plotW, plotH             = chartW - padLeft - padRight, chartH - padTop - padBottom
	plotRight, plotBottom    = padLeft + plotW, padTop + plotH
	timelineW, timelineBandH = 1000.0, 34.0
)

// sample is one measurement of a check.
type sample struct {
	At     time.Time
	Value  float64
	Status judge.Status
}

// chart is one check's value over the watch.
type chart struct {
	ID, Name, Unit string
	// Desc says in words what the chart shows, for screen readers.
	Desc                           string
	W, H, Left, Right, Top, Bottom float64
	// YLabelX and XLabelY place the axes' labels.
	YLabelX, XLabelY, LineLabelX float64
	// Paths are the runs of the value's line (a gap where there was no
	// number); Dots mark the measurements that warned or failed.
	Paths  []string
	Dots   []dot
	Lines  []hline
	Marks  []vline
	YTicks []tick
	XTicks []tick
	Empty  bool
}

type dot struct {
	X, Y  float64
	Class string
	Label string
}

// hline is a horizontal line across the plot: a fail or warn line, or
// the baseline.
type hline struct {
	// LY places the label, in the right margin.
	Y, LY        float64
	Class, Label string
	Value        string
}

// vline is a moment of the watch: the deploy, the end of the warm-up,
// the detection, the rollback.
type vline struct {
	// LY staggers the labels of moments close together.
	X, LY        float64
	Class, Label string
}

type tick struct {
	At    float64
	Label string
}

// moment is a named time marked on every chart.
type moment struct {
	At           time.Time
	Class, Label string
}

// newChart draws a check's samples over [from, to].
func newChart(c *watch.CheckResult, samples []sample, from, to time.Time, moments []moment) chart {
	ch := chart{ID: "chart-" + slug(c.Name), Name: c.Name, Unit: c.Unit,
		W: chartW, H: chartH, Left: padLeft, Right: plotRight, Top: padTop, Bottom: plotBottom,
		YLabelX: padLeft - 6, XLabelY: plotBottom + 18, LineLabelX: plotRight + 8}
	if !to.After(from) {
		to = from.Add(time.Second)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	widen := func(v *float64) {
		if v != nil && !math.IsNaN(*v) && !math.IsInf(*v, 0) {
			lo, hi = math.Min(lo, *v), math.Max(hi, *v)
		}
	}
	for _, s := range samples {
		widen(&s.Value)
	}
	widen(c.Line)
	widen(c.WarnLine)
	widen(c.Baseline)
	if math.IsInf(lo, 1) {
		ch.Empty = true
		lo, hi = 0, 1
	}
	lo = math.Min(lo, 0)
	if hi <= lo {
		hi = lo + 1
	}
	hi += (hi - lo) * 0.08
	// Round ticks: 0, 2%, 4%, 6% rather than 1.53%, 3.07%.
	step := niceNumber((hi - lo) / 4)
	lo, hi = math.Floor(lo/step)*step, math.Ceil(hi/step)*step
	x := func(t time.Time) float64 {
		return round(padLeft + plotW*float64(t.Sub(from))/float64(to.Sub(from)))
	}
	y := func(v float64) float64 { return round(plotBottom - plotH*(v-lo)/(hi-lo)) }

	var path strings.Builder
	for _, s := range samples {
		if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) || s.At.Before(from) || s.At.After(to) {
			if path.Len() > 0 {
				ch.Paths = append(ch.Paths, path.String())
				path.Reset()
			}
			continue
		}
		cmd := "L"
		if path.Len() == 0 {
			cmd = "M"
		}
		path.WriteString(cmd + ff(x(s.At)) + " " + ff(y(s.Value)) + " ")
		if s.Status == judge.Fail || s.Status == judge.Warn {
			ch.Dots = append(ch.Dots, dot{X: x(s.At), Y: y(s.Value), Class: s.Status.String(),
				Label: clock(s.At) + ": " + watch.FormatValue(&s.Value, c.Unit) + " (" + s.Status.String() + ")"})
		}
	}
	if path.Len() > 0 {
		ch.Paths = append(ch.Paths, path.String())
	}
	if c.Baseline != nil && finite(*c.Baseline) != nil {
		ch.Lines = append(ch.Lines, hline{Y: y(*c.Baseline), Class: "baseline", Label: "baseline", Value: watch.FormatValue(c.Baseline, c.Unit)})
	}
	if c.WarnLine != nil && finite(*c.WarnLine) != nil {
		ch.Lines = append(ch.Lines, hline{Y: y(*c.WarnLine), Class: "warn", Label: "warn", Value: watch.FormatValue(c.WarnLine, c.Unit)})
	}
	if c.Line != nil && finite(*c.Line) != nil {
		ch.Lines = append(ch.Lines, hline{Y: y(*c.Line), Class: "fail", Label: "fail", Value: watch.FormatValue(c.Line, c.Unit)})
	}
	spreadLabels(ch.Lines)
	for _, m := range moments {
		if !m.At.Before(from) && !m.At.After(to) {
			ch.Marks = append(ch.Marks, vline{X: x(m.At), LY: 12 + 13*float64(len(ch.Marks)%3), Class: m.Class, Label: m.Label})
		}
	}
	for i := 0; i <= int(math.Round((hi-lo)/step)); i++ {
		v := lo + step*float64(i)
		ch.YTicks = append(ch.YTicks, tick{At: y(v), Label: watch.FormatValue(&v, c.Unit)})
	}
	span := to.Sub(from)
	every := niceStep(span / 5)
	for t := time.Duration(0); t <= span; t += every {
		ch.XTicks = append(ch.XTicks, tick{At: x(from.Add(t)), Label: "+" + human(t)})
	}
	ch.Desc = describe(c, samples, from, to)
	return ch
}

// spreadLabels moves the labels of lines close together apart, keeping
// each near its line.
func spreadLabels(lines []hline) {
	const gap = 13.0
	order := make([]int, len(lines))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(lines[a].Y, lines[b].Y) })
	last := math.Inf(-1)
	for _, i := range order {
		ly := math.Max(lines[i].Y+4, last+gap)
		lines[i].LY = ly
		last = ly
	}
}

// describe says what a chart shows, for people who cannot see it.
func describe(c *watch.CheckResult, samples []sample, from, to time.Time) string {
	var shown []float64
	for _, s := range samples {
		if !s.At.Before(from) && !s.At.After(to) && finite(s.Value) != nil {
			shown = append(shown, s.Value)
		}
	}
	var b strings.Builder
	b.WriteString(c.Name + ": " + strconv.Itoa(len(shown)) + " measurements")
	if n := len(shown); n > 0 {
		last, peak := shown[n-1], slices.Max(shown)
		b.WriteString(", the last " + watch.FormatValue(&last, c.Unit) + ", the highest " + watch.FormatValue(&peak, c.Unit))
	}
	if c.Baseline != nil {
		b.WriteString("; baseline " + watch.FormatValue(c.Baseline, c.Unit))
	}
	if c.Line != nil {
		b.WriteString("; fail line " + watch.FormatValue(c.Line, c.Unit))
	}
	if c.WarnLine != nil {
		b.WriteString("; warn line " + watch.FormatValue(c.WarnLine, c.Unit))
	}
	return b.String() + "."
}

// niceNumber is 1, 2, 2.5 or 5 times a power of ten, at least x.
func niceNumber(x float64) float64 {
	if x <= 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= x*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// niceStep is a round tick interval near d.
func niceStep(d time.Duration) time.Duration {
	for _, s := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour} {
		if s >= d {
			return s
		}
	}
	return 24 * time.Hour
}

// band is one phase on the timeline.
type band struct {
	X, W        float64
	Name, Label string
	Class       string
	Duration    string
	Outcome     string
	Reason      string
	Start       time.Time
	Open        bool
}

// timeline places the phases on one line over [from, to].
func timeline(phases []*watch.PhaseRecord, from, to time.Time) []band {
	if !to.After(from) {
		to = from.Add(time.Second)
	}
	span := float64(to.Sub(from))
	var out []band
	for _, p := range phases {
		end := to
		if p.EndedAt != nil {
			end = *p.EndedAt
		}
		x := timelineW * float64(p.StartedAt.Sub(from)) / span
		w := timelineW * float64(end.Sub(p.StartedAt)) / span
		class := string(p.Outcome)
		if p.EndedAt == nil {
			class = "running"
		}
		out = append(out, band{X: round(x), W: round(math.Max(w, 2)), Name: p.Name, Label: phaseLabel(p.Name), Class: class,
			Duration: human(end.Sub(p.StartedAt)), Outcome: string(p.Outcome), Reason: p.Reason, Start: p.StartedAt, Open: p.EndedAt == nil})
	}
	return out
}

func phaseLabel(name string) string {
	switch name {
	case watch.PhaseWarmup:
		return "Warm-up"
	}
	return titleCase(name)
}

// bar is one bar of a bar chart.
type bar struct {
	X, W, Y, H float64
	LabelY     float64
	// Count is shown above the bar, at CX.
	Count         int
	CX            float64
	Y2, H2        float64 // the second stack (failed)
	Label, Detail string
}

// barChart is a small bar chart: deploys per week, detection times.
type barChart struct {
	// Label says what the chart shows, for screen readers.
	Label      string
	W, H, Base float64
	Bars       []bar
	Max        int
	Empty      bool
}

const barW, barH, barBase = 720.0, 170.0, 140.0

// bars draws counts (with an optional stacked second count).
func bars(label string, labels []string, counts, stacked []int, detail func(i int) string) barChart {
	bc := barChart{Label: label, W: barW, H: barH, Base: barBase}
	top := 0
	for i, c := range counts {
		top = max(top, c)
		if stacked != nil && stacked[i] > c {
			top = stacked[i]
		}
	}
	bc.Max = top
	if top == 0 {
		bc.Empty = true
		top = 1
	}
	n := len(counts)
	if n == 0 {
		bc.Empty = true
		return bc
	}
	slot := (barW - 8) / float64(n)
	every := max(1, (n+11)/12) // at most a dozen labels under the bars
	for i, c := range counts {
		h := (barBase - 20) * float64(c) / float64(top)
		b := bar{X: round(4 + slot*float64(i) + slot*0.15), W: round(slot * 0.7), Y: round(barBase - h), H: round(h), LabelY: barBase + 18,
			Count: c, CX: round(4 + slot*float64(i) + slot*0.5)}
		if i%every == 0 {
			b.Label = labels[i]
		}
		if stacked != nil {
			h2 := (barBase - 20) * float64(stacked[i]) / float64(top)
			b.Y2, b.H2 = round(barBase-h2), round(h2)
		}
		if detail != nil {
			b.Detail = detail(i)
		}
		bc.Bars = append(bc.Bars, b)
	}
	return bc
}

func round(v float64) float64 { return math.Round(v*10) / 10 }

func ff(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// slug makes a name safe for an id attribute.
func slug(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}
