package dashboard

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/dashboard/fixture"
	"github.com/deploywatch/deploywatch/internal/dora"
	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/store/sqlite"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// pages serves the dashboard alone over a real SQLite store with a known
// history; token "good" may read.
func pages(t *testing.T, openRead bool) (*httptest.Server, fixture.Result, store.Store) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	res, err := fixture.Fill(t.Context(), st, fixture.Options{Now: now, Deploys: 30, Span: 10 * 24 * time.Hour, Watches: 30, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{History: st, Now: func() time.Time { return now },
		DORA: func(ctx context.Context, service, env string, window time.Duration) (dora.Report, error) {
			return dora.Report{From: now.Add(-window), To: now, Frequency: dora.Figure{Value: math.NaN()}, LeadTime: dora.Figure{Value: math.NaN()},
				ChangeFailureRate: dora.Figure{Value: math.NaN()}, RecoveryTime: dora.Figure{Value: math.NaN()},
				Judge: dora.Judge{Precision: math.NaN(), Recall: math.NaN(), InconclusiveShare: math.NaN()}}, nil
		},
		MayRead: func(r *http.Request) bool {
			c, err := r.Cookie(CookieName)
			return openRead || err == nil && c.Value == "good"
		},
		ReadToken: func(tok string) bool { return tok == "good" },
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	d.Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs, res, st
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(t *testing.T, url string, cookie string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: CookieName, Value: cookie})
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String(), resp.Header
}

func TestPageAnswers(t *testing.T) {
	hs, res, _ := pages(t, true)
	failed := res.Failed[len(res.Failed)-1]
	for _, tc := range []struct {
		name, path string
		status     int
		has        string
	}{
		{"the list", "/", 200, `<table class="deploys">`},
		{"the list's live rows", "/?fragment=rows", 200, `<tbody>`},
		{"a filter", "/?verdict=failed&service=payments", 200, `Clear filters`},
		{"a bad verdict", "/?verdict=broken", 400, "verdict: want in_progress, stable, failed or inconclusive"},
		{"a deploy", "/deploys/" + failed, 200, `decided the verdict`},
		{"a deploy's live part", "/deploys/" + failed + "?fragment=live", 200, `data-verdict="failed"`},
		{"an unknown deploy", "/deploys/0123456789abcdef", 404, "no such deploy"},
		{"a service", "/services/payments", 200, "DORA figures"},
		{"an unknown service", "/services/nope", 404, "no such deploy"},
		{"a bad window", "/services/payments?window=2d", 400, "window: want 7d, 30d, 90d or 365d"},
		{"the judge", "/judge", 200, "The judge&#39;s record"},
		{"the styles", "/static/app.css", 200, "--ok"},
		{"the script", "/static/live.js", 200, "EventSource"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, h := get(t, hs.URL+tc.path, "")
			if status != tc.status || !strings.Contains(strings.ToLower(body), strings.ToLower(tc.has)) {
				t.Fatalf("GET %s: %d, want %d with %q:\n%.600s", tc.path, status, tc.status, tc.has, body)
			}
			if strings.HasSuffix(h.Get("Content-Type"), "html; charset=utf-8") && strings.Contains(body, "<script>") {
				t.Errorf("an inline script in %s", tc.path)
			}
		})
	}
}

func TestSignIn(t *testing.T) {
	hs, _, _ := pages(t, false)
	status, _, h := get(t, hs.URL+"/services/payments?window=7d", "")
	if status != http.StatusSeeOther || h.Get("Location") != "/login?next="+url.QueryEscape("/services/payments?window=7d") {
		t.Fatalf("without a token: %d to %q, want 303 to the login form", status, h.Get("Location"))
	}
	if status, _, _ := get(t, hs.URL+"/", "good"); status != 200 {
		t.Fatalf("with the token's cookie: %d", status)
	}
	post := func(form url.Values) *http.Response {
		resp, err := noRedirect.PostForm(hs.URL+"/login", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(url.Values{"token": {"forged"}, "next": {"/"}}); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("a forged token: %d with cookies %v", resp.StatusCode, resp.Cookies())
	}
	resp := post(url.Values{"token": {"good"}, "next": {"//evil.example/"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("a redirect off the site: %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	var c *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == CookieName {
			c = k
		}
	}
	if c == nil || c.Value != "good" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("the cookie %+v: want the token, HttpOnly, SameSite=Strict", c)
	}
}

func TestChart(t *testing.T) {
	from := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	to := from.Add(10 * time.Minute)
	num := func(v float64) *float64 { return &v }
	c := &watch.CheckResult{Name: "error_rate", Unit: "percent", Baseline: num(0.002), Line: num(0.01), WarnLine: num(0.0105)}
	samples := []sample{
		{At: from.Add(time.Minute), Value: 0.001, Status: judge.Pass},
		{At: from.Add(2 * time.Minute), Value: math.NaN(), Status: judge.NoData},
		{At: from.Add(3 * time.Minute), Value: math.Inf(1), Status: judge.Fail},
		{At: from.Add(4 * time.Minute), Value: 0.02, Status: judge.Fail},
		{At: from.Add(5 * time.Minute), Value: 0.03, Status: judge.Fail},
		{At: to.Add(time.Minute), Value: 0.5, Status: judge.Fail}, // after the span: left out
	}
	ch := newChart(c, samples, from, to, []moment{{At: from.Add(30 * time.Second), Class: "deploy", Label: "deploy"}, {At: to.Add(time.Hour), Label: "later"}})
	if len(ch.Paths) != 2 {
		t.Errorf("%d runs of the line, want 2 (a gap at the NaN and the Inf): %v", len(ch.Paths), ch.Paths)
	}
	if len(ch.Dots) != 2 {
		t.Errorf("%d failure marks, want 2 (the finite ones)", len(ch.Dots))
	}
	if len(ch.Marks) != 1 {
		t.Errorf("%d moments marked, want the one in the span", len(ch.Marks))
	}
	top := ch.YTicks[len(ch.YTicks)-1]
	if !strings.HasSuffix(top.Label, "%") {
		t.Errorf("the top tick %q is not a percentage", top.Label)
	}
	for _, l := range ch.Lines {
		if l.Y < padTop || l.Y > plotBottom {
			t.Errorf("the %s line at y=%v is outside the plot", l.Class, l.Y)
		}
	}
	// The warn and fail lines are 0.05% apart: their labels are not.
	warn, fail := ch.Lines[1], ch.Lines[2]
	if math.Abs(warn.LY-fail.LY) < 12 {
		t.Errorf("labels at %v and %v overlap", warn.LY, fail.LY)
	}
	if !strings.Contains(ch.Desc, "3 measurements, the last 3%, the highest 3%") || !strings.Contains(ch.Desc, "fail line 1%") {
		t.Errorf("description %q", ch.Desc)
	}
	empty := newChart(&watch.CheckResult{Name: "cpu"}, nil, from, from, nil)
	if !empty.Empty || len(empty.Paths) != 0 {
		t.Errorf("a chart of nothing: %+v", empty)
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 850 * time.Millisecond: "850ms", 4500 * time.Millisecond: "4.5s", 42 * time.Second: "42s",
		3*time.Minute + 20*time.Second: "3m 20s", 2 * time.Hour: "2h", 26*time.Hour + 5*time.Minute: "26h 5m", 76 * time.Hour: "3d 4h",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
}
