package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"verdictText": verdictText,
	"ago":         ago,
	"iso":         func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"clock":       clock,
	"stamp":       stamp,
	"since":       func(a, b time.Time) string { return human(b.Sub(a)) },
	"human":       human,
	"secs":        func(s float64) string { return human(time.Duration(s * float64(time.Second))) },
	"value":       watch.FormatValue,
	"pct":         pct,
	"num":         func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) },
	"f1":          func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
	"short":       shortID,
	"lower":       strings.ToLower,
	"title":       titleCase,
	"pathEscape":  url.PathEscape,
	"add":         func(a, b int) int { return a + b },
	"deref":       func(p *float64) float64 { return *p },
}

// verdictText names a verdict for people.
func verdictText(v string) string {
	switch v {
	case store.InProgress:
		return "Watching"
	case "":
		return "Unknown"
	}
	return titleCase(v)
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + strings.ReplaceAll(s[1:], "_", " ")
}

// human is a duration for people: "850ms", "42s", "3m 20s", "2h 5m",
// "3d 4h".
func human(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		s := d.Seconds()
		if s < 10 && math.Mod(s, 1) != 0 {
			return strconv.FormatFloat(s, 'f', 1, 64) + "s"
		}
		return fmt.Sprintf("%ds", int(s))
	case d < time.Hour:
		m, s := int(d.Minutes()), int(d.Seconds())%60
		if s == 0 {
			return fmt.Sprintf("%dm", m)
		}
		return fmt.Sprintf("%dm %ds", m, s)
	case d < 48*time.Hour:
		h, m := int(d.Hours()), int(d.Minutes())%60
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh %dm", h, m)
	}
	days, h := int(d.Hours())/24, int(d.Hours())%24
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd %dh", days, h)
}

// ago is how long before now t was: "just now", "5m ago", "3d ago".
func ago(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 10*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// clock is a time of day in UTC, with seconds.
func clock(t time.Time) string { return t.UTC().Format("15:04:05") }

// stamp is a date and time in UTC.
func stamp(t time.Time) string { return t.UTC().Format("Jan 2 15:04 UTC") }

// pct is a ratio as a percentage; "—" when unknown.
func pct(v *float64) string {
	if v == nil {
		return "—"
	}
	return strconv.FormatFloat(100**v, 'f', 1, 64) + "%"
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// finite is v when it is a number, nil otherwise.
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}
