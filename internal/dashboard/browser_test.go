package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/dashboard/fixture"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/server"
	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/store/sqlite"
	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/watch"
)

const (
	readToken   = "reader-0123456789abcdef"
	ingestToken = "ci-0123456789abcdef"
	// hostile is a version string a pipeline could send.
	hostile = `<img src=x onerror=alert(1)>`
)

// site is serve over a real SQLite store filled with a known history, and
// a headless Chromium that browses it.
type site struct {
	t       *testing.T
	url     string
	st      store.Store
	history fixture.Result
	ctx     context.Context
	shots   string

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
	dialogs []string
}

func newSite(t *testing.T) *site {
	t.Helper()
	chromium, ok := testenv.Chromium()
	if !ok {
		testenv.Missing(t, "chromium", "Debian package chromium")
	}
	if _, ok := testenv.Axe(); !ok {
		testenv.Missing(t, "axe-core", "scripts/tools.sh axe, then DEPLOYWATCH_AXE=<its path>")
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now()
	res, err := fixture.Fill(t.Context(), st, fixture.Options{Now: now.Add(-time.Hour), Deploys: 90, Span: 35 * 24 * time.Hour, Watches: 24, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadServe([]byte(`store: {sqlite: unused.db}
api:
  tokens:
    - {name: reader, scopes: [read], token_env: READ}
    - {name: ci, scopes: [ingest, read], token_env: INGEST}
`), "serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Config: cfg, Store: st, Logger: slog.New(slog.DiscardHandler),
		Env: func(k string) (string, bool) {
			v, ok := map[string]string{"READ": readToken, "INGEST": ingestToken}[k]
			return v, ok
		}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)

	actx, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1280, 900))...)
	t.Cleanup(cancel)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromium, err)
	}
	s := &site{t: t, url: hs.URL, st: st, history: res, ctx: ctx, shots: testenv.ArtifactDir(t, "dashboard")}
	// A dialog would be script run by the page: it is recorded, and
	// dismissed so that the page goes on.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			s.mu.Lock()
			s.dialogs = append(s.dialogs, ev.Message)
			s.mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			s.mu.Lock()
			s.console = append(s.console, m)
			s.mu.Unlock()
		}
	}()
	return s
}

// do runs browser actions, bounded so that a stuck page fails the test.
func (s *site) do(actions ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		s.t.Fatal(err)
	}
}

func eval[T any](s *site, js string) T {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		s.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// open navigates and waits for the page's main content.
func (s *site) open(path string) {
	s.t.Helper()
	s.do(chromedp.Navigate(s.url+path), chromedp.WaitVisible(chromedp.CSS("main h1")))
}

// shot keeps a screenshot of the whole page as an artifact.
func (s *site) shot(name string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatal(err)
	}
	path := filepath.Join(s.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("screenshot: %s", path)
}

// noConsoleErrors fails on any error, exception or warning the pages
// logged (a Content-Security-Policy violation is one).
func (s *site) noConsoleErrors() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.dialogs {
		s.t.Errorf("the page opened a dialog: %q", d)
	}
	s.dialogs = nil
	for _, m := range s.console {
		if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
			s.t.Errorf("console %s at %s: %s", m.Type, m.URL, m.Text)
		}
	}
	s.console = nil
}

type violation struct {
	ID, Impact, Help string
	Nodes            []string
}

// axe runs axe-core in the page and fails on serious or critical
// violations.
func (s *site) axe(page string) {
	s.t.Helper()
	for _, v := range s.axeViolations() {
		s.t.Errorf("%s: axe %s (%s): %s, at %v", page, v.ID, v.Impact, v.Help, v.Nodes)
	}
}

func (s *site) axeViolations() []violation {
	s.t.Helper()
	path, _ := testenv.Axe() // newSite made sure of it
	src, err := os.ReadFile(path)
	if err != nil {
		s.t.Fatal(err)
	}
	eval[chromedp.Void](s, string(src))
	return eval[[]violation](s, `axe.run(document, {resultTypes: ['violations']}).then(r => r.violations
		.filter(v => v.impact === 'serious' || v.impact === 'critical')
		.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))})))`)
}

// api calls serve's API with the CI's token.
func (s *site) api(method, path string, body any) []byte {
	s.t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		s.t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(s.t.Context(), method, s.url+"/api/v1"+path, bytes.NewReader(data))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ingestToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		s.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, out)
	}
	return out
}

// ingest records a watch as a CI run does: the deploy, then events and
// the report as they come.
func (s *site) create(key string, w fixture.Watch) string {
	s.t.Helper()
	var created struct{ ID string }
	out := s.api(http.MethodPost, "/deploys", map[string]any{"key": key, "deploy": map[string]any{
		"service": w.Service, "environment": w.Environment, "version": w.Version, "previous_version": w.PreviousVersion,
		"started_at": w.StartedAt, "triggered_by": "github-actions"}})
	if err := json.Unmarshal(out, &created); err != nil || created.ID == "" {
		s.t.Fatalf("created %s: %v", out, err)
	}
	return created.ID
}

func (s *site) send(id string, events []store.Event, rep *watch.Report) {
	s.t.Helper()
	type item struct {
		Seq   int64           `json:"seq"`
		Event json.RawMessage `json:"event"`
	}
	body := struct {
		Events []item        `json:"events"`
		Report *watch.Report `json:"report"`
	}{Report: rep}
	for _, e := range events {
		body.Events = append(body.Events, item{Seq: e.Seq, Event: e.Data})
	}
	s.api(http.MethodPost, "/deploys/"+id+"/events", body)
}

func TestPagesInABrowser(t *testing.T) {
	s := newSite(t)

	t.Run("sign in with a read token", func(t *testing.T) {
		s.t = t
		s.do(chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.ID("token")))
		if got := eval[string](s, `location.pathname`); got != "/login" {
			t.Fatalf("a visitor without a token is at %s, want /login", got)
		}
		s.axe("login")
		s.shot("login")
		// The checker does find what it is there to find.
		eval[chromedp.Void](s, `document.querySelector('label[for=token]').remove()`)
		if v := s.axeViolations(); len(v) == 0 || v[0].ID != "label" {
			t.Fatalf("axe found %v in a form with an unlabelled field, want the label violation", v)
		}
		s.do(chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("token")))
		s.do(chromedp.SendKeys(chromedp.ID("token"), readToken+kb.Enter), chromedp.WaitVisible(chromedp.CSS("table.deploys")))
		if got := eval[string](s, `location.pathname`); got != "/" {
			t.Fatalf("signed in at %s, want /", got)
		}
		s.noConsoleErrors()
	})

	t.Run("the deploys", func(t *testing.T) {
		s.t = t
		s.open("/")
		rows := eval[int](s, `document.querySelectorAll('table.deploys tbody tr').length`)
		if rows != 50 {
			t.Errorf("%d rows, want a page of 50", rows)
		}
		if eval[int](s, `document.querySelectorAll('a[rel=next]').length`) != 1 {
			t.Error("no link to the older deploys")
		}
		first := eval[string](s, `document.querySelector('table.deploys tbody tr .v').textContent`)
		newest := s.deployVersion(s.history.IDs[len(s.history.IDs)-1])
		if first != newest {
			t.Errorf("the first row is %s, want the newest deploy %s", first, newest)
		}
		s.axe("deploys")
		s.shot("deploys")
		// Filtered to the failed deploys of one service.
		s.open("/?service=payments&verdict=failed")
		verdicts := eval[[]string](s, `[...document.querySelectorAll('table.deploys tbody tr')].map(r => r.className + ' ' + r.querySelector('td[data-label=Service]').textContent)`)
		if len(verdicts) == 0 {
			t.Fatal("no failed deploys of payments listed")
		}
		for _, v := range verdicts {
			if v != "failed payments" {
				t.Errorf("a row %q in the list of failed deploys of payments", v)
			}
		}
		s.noConsoleErrors()
	})

	t.Run("a failed deploy", func(t *testing.T) {
		s.t = t
		id := s.history.Failed[len(s.history.Failed)-1] // the newest: a whole watch
		s.open("/deploys/" + id)
		if n := eval[int](s, `document.querySelectorAll('svg.chart').length`); n != 5 {
			t.Errorf("%d charts, want one for each of the 5 checks", n)
		}
		first := eval[string](s, `document.querySelector('article.check').className`)
		if !strings.Contains(first, "deciding") {
			t.Errorf("the first check is %q, want the one that decided the verdict", first)
		}
		for _, want := range []string{"Rollout", "Warm-up", "Monitor", "Rollback", "detected", "fail line"} {
			if !strings.Contains(eval[string](s, `document.body.textContent`), want) {
				t.Errorf("the page does not show %q", want)
			}
		}
		s.axe("deploy")
		s.shot("deploy-failed")
		s.noConsoleErrors()
	})

	t.Run("a service", func(t *testing.T) {
		s.t = t
		s.open("/services/payments")
		figures := eval[[]string](s, `[...document.querySelectorAll('.card h3')].map(h => h.textContent)`)
		for _, want := range []string{"Deployment frequency", "Lead time for changes", "Change failure rate", "Failed deployment recovery time", "Precision", "Recall"} {
			if !strings.Contains(strings.Join(figures, "|"), want) {
				t.Errorf("no %q among %v", want, figures)
			}
		}
		s.axe("service")
		s.shot("service")
		s.open("/judge")
		s.axe("judge")
		s.shot("judge")
		s.noConsoleErrors()
	})

	t.Run("a hostile version is text", func(t *testing.T) {
		s.t = t
		w := fixture.Watch{Service: "checkout", Environment: "production", Version: hostile, PreviousVersion: `"><script>alert(2)</script>`,
			StartedAt: time.Now().Add(-20 * time.Minute), Monitor: time.Minute, Interval: 10 * time.Second, Seed: 9}
		_, events, rep := w.Build()
		id := s.create("hostile", w)
		s.send(id, events, rep)
		s.open("/deploys/" + id)
		if got := eval[string](s, `document.querySelector('h1 .v').textContent`); got != hostile {
			t.Errorf("the version shows as %q, want the text %q", got, hostile)
		}
		if n := eval[int](s, `document.querySelectorAll('img[src=x], main script').length`); n != 0 {
			t.Errorf("%d elements made of the version", n)
		}
		s.open("/")
		if !strings.Contains(eval[string](s, `document.querySelector('table.deploys').textContent`), hostile) {
			t.Error("the list does not show the hostile version as text")
		}
		s.shot("hostile")
		s.noConsoleErrors() // and no dialog
	})

	t.Run("the keyboard reaches every link", func(t *testing.T) {
		s.t = t
		for _, path := range []string{"/", "/deploys/" + s.history.Failed[len(s.history.Failed)-1], "/services/payments"} {
			s.open(path)
			s.keyboardReachesEverything(path)
		}
	})

	t.Run("a phone and the dark", func(t *testing.T) {
		s.t = t
		s.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
		s.open("/")
		if w := eval[int](s, `document.documentElement.scrollWidth`); w > 390 {
			t.Errorf("the list is %dpx wide on a 390px phone", w)
		}
		s.shot("deploys-phone")
		s.open("/deploys/" + s.history.Failed[len(s.history.Failed)-1])
		s.shot("deploy-phone")
		s.do(chromedp.EmulateViewport(1280, 900))
		if _, err := chromedp.Call(s.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
			t.Fatal(err)
		}
		s.open("/deploys/" + s.history.Failed[len(s.history.Failed)-1])
		s.axe("deploy, dark")
		s.shot("deploy-dark")
		if _, err := chromedp.Call(s.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
			t.Fatal(err)
		}
		s.noConsoleErrors()
	})

	t.Run("a watch in progress updates without a reload", func(t *testing.T) {
		s.t = t
		s.liveDeploy()
		s.noConsoleErrors()
	})
}

// liveDeploy opens the page of a watch in progress, then sends it a new
// measurement and then its verdict, and times how long each takes to
// appear.
func (s *site) liveDeploy() {
	t := s.t
	w := fixture.Watch{Service: "search", Environment: "production", Version: "v9.0.0", PreviousVersion: "v8.9.0",
		StartedAt: time.Now().Add(-4 * time.Minute), Fail: "error_rate", Monitor: 10 * time.Minute, Interval: 10 * time.Second, Seed: 3}
	_, all, final := w.Build()
	var measured []time.Time
	for _, e := range all {
		if e.Kind == string(event.Measured) {
			measured = append(measured, e.Time)
		}
	}
	if len(measured) < 4 || final.Verdict != watch.Failed {
		t.Fatalf("the made-up watch has %d measurements and verdict %s", len(measured), final.Verdict)
	}
	upTo := func(at time.Time) ([]store.Event, *watch.Report) {
		cut := w
		cut.Until = at
		_, events, rep := cut.Build()
		return events, rep
	}
	id := s.create("live", w)
	events, rep := upTo(measured[1])
	s.send(id, events, rep)

	s.open("/deploys/" + id)
	eval[chromedp.Void](s, `window.notReloaded = true`)
	if got := eval[string](s, `document.querySelector('.deployhead .badge').textContent`); got != "Watching" {
		t.Fatalf("the badge says %q, want Watching", got)
	}
	// The next measurement's value of error_rate, as the page shows it.
	events, rep = upTo(measured[2])
	value := watch.FormatValue(checkIn(rep, "error_rate").Value, "percent")
	selector := `document.querySelector('[aria-labelledby="h-check-error_rate"] dl.evidence dd').textContent`
	if got := eval[string](s, selector); got == value {
		t.Fatalf("the page shows %s before it was measured: pick another seed", value)
	}
	start := time.Now()
	s.send(id, events, rep)
	s.waitFor(selector+` === `+jsString(value), "the new value "+value)
	t.Logf("a new value appeared %v after it was sent", time.Since(start).Round(time.Millisecond))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the new value took %v to appear, want within 2s", took)
	}

	start = time.Now()
	s.send(id, all, final)
	s.waitFor(`document.querySelector('.deployhead .badge').textContent === 'Failed'`, "the verdict")
	t.Logf("the verdict appeared %v after it was sent", time.Since(start).Round(time.Millisecond))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the verdict took %v to appear, want within 2s", took)
	}
	s.waitFor(`document.getElementById('announce').textContent === 'Verdict: failed'`, "the verdict announced to screen readers")
	if !eval[bool](s, `window.notReloaded === true`) {
		t.Error("the page was reloaded")
	}
	s.shot("deploy-live-verdict")
}

// waitFor polls the page (each animation frame) until the expression is
// true, bounded generously.
func (s *site) waitFor(expr, what string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		s.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// keyboardReachesEverything tabs through the page and checks that every
// link, button and field got the focus, in order, the skip link first.
func (s *site) keyboardReachesEverything(page string) {
	s.t.Helper()
	const focusable = `a[href], button, select, input:not([type=hidden]), summary, [tabindex="0"]`
	n := eval[int](s, `document.querySelectorAll('`+focusable+`').length`)
	seen := map[int]bool{}
	first := -2
	for i := 0; i < n+3 && len(seen) < n; i++ {
		s.do(chromedp.KeyEvent(kb.Tab))
		at := eval[int](s, `[...document.querySelectorAll('`+focusable+`')].indexOf(document.activeElement)`)
		if i == 0 {
			first = at
		}
		if at >= 0 {
			seen[at] = true
		}
	}
	if first != 0 || eval[string](s, `document.querySelectorAll('`+focusable+`')[0].className`) != "skip" {
		s.t.Errorf("%s: the first Tab reached element %d, want the skip link", page, first)
	}
	if len(seen) != n {
		var missed []string
		for i := range n {
			if !seen[i] {
				missed = append(missed, eval[string](s, fmt.Sprintf(`document.querySelectorAll('%s')[%d].outerHTML.slice(0, 120)`, focusable, i)))
			}
		}
		s.t.Errorf("%s: Tab reached %d of %d elements; not %v", page, len(seen), n, missed)
	}
}

func (s *site) deployVersion(id string) string {
	d, err := s.st.Deploy(s.t.Context(), id)
	if err != nil {
		s.t.Fatal(err)
	}
	return d.Version
}

func checkIn(rep *watch.Report, name string) *watch.CheckResult {
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	return &watch.CheckResult{}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
