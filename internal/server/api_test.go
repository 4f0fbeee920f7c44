package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/store/postgres"
	"github.com/deploywatch/deploywatch/internal/store/sqlite"
	"github.com/deploywatch/deploywatch/internal/testenv"
)

// The tokens of the API tests, from the environment as in production.
var tokens = map[string]string{
	"DW_TEST_READ":   "read-0123456789abcdef",
	"DW_TEST_INGEST": "ingest-0123456789abcdef",
	"DW_TEST_LABEL":  "label-0123456789abcdef",
}

const apiServe = `store: {sqlite: unused.db}
api:
  open_read: %v
  tokens:
    - {name: reader, scopes: [read], token_env: DW_TEST_READ}
    - {name: ci, scopes: [ingest, read], token_env: DW_TEST_INGEST}
    - {name: oncall, scopes: [label, read], token_env: DW_TEST_LABEL}
`

// apiServer is serve as a history server over st, behind httptest.
func apiServer(t testing.TB, st store.Store, openRead bool) *httptest.Server {
	t.Helper()
	cfg, err := config.LoadServe([]byte(fmt.Sprintf(apiServe, openRead)), "serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Config: cfg, Store: st, Logger: slog.New(slog.DiscardHandler),
		Env: func(k string) (string, bool) { v, ok := tokens[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs
}

// client makes API requests and has the OpenAPI document check every
// request (unless told it is meant to be bad) and every response.
type client struct {
	t      *testing.T
	base   string
	router routers.Router
}

func newClient(t *testing.T, base string) *client {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openAPI)
	if err != nil {
		t.Fatalf("the OpenAPI document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: base + "/api/v1"}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, base: base, router: router}
}

type call struct {
	method, path, token string
	body                any
	// bad marks a request meant to break the contract: it is sent as it
	// is, only its answer is checked.
	bad     bool
	headers map[string]string
}

func (c *client) do(k call) (int, []byte) {
	c.t.Helper()
	var raw []byte
	switch b := k.body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			c.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(k.method, c.base+"/api/v1"+k.path, bytes.NewReader(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if k.token != "" {
		req.Header.Set("Authorization", "Bearer "+k.token)
	}
	for h, v := range k.headers {
		req.Header.Set(h, v)
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil && !k.bad {
		c.t.Fatalf("%s %s is not in the OpenAPI document: %v", k.method, k.path, err)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if route != nil && !k.bad {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			c.t.Fatalf("%s %s breaks the OpenAPI document: %v", k.method, k.path, err)
		}
		req.Body = io.NopCloser(bytes.NewReader(raw))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if route != nil && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
			Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		out.SetBodyBytes(body)
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			c.t.Fatalf("the answer to %s %s (%d) breaks the OpenAPI document: %v\n%s", k.method, k.path, resp.StatusCode, err, body)
		}
	}
	return resp.StatusCode, body
}

// stores are the backends the API tests run against.
func stores(t *testing.T) map[string]func(t *testing.T) store.Store {
	t.Helper()
	var pg *testenv.Postgres
	return map[string]func(t *testing.T) store.Store{
		"sqlite": func(t *testing.T) store.Store {
			st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "deploywatch.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
		"postgres": func(t *testing.T) store.Store {
			if pg == nil {
				pg = testenv.StartPostgres(t)
			}
			st, err := postgres.Open(context.Background(), pg.NewDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func ev(kind string, at time.Time, extra string) map[string]any {
	var e map[string]any
	_ = json.Unmarshal([]byte(fmt.Sprintf(`{"time":%q,"event":%q,"elapsed_seconds":0,"service":"api","version":"v2"%s}`, at.Format(time.RFC3339Nano), kind, extra)), &e)
	return e
}

func report(verdict string, rolledBack bool) map[string]any {
	rb := "null"
	if rolledBack {
		rb = `{"performed":true,"ok":true,"revision":"v1","at":"2026-11-25T12:00:09Z","policy":"rollback"}`
	}
	var r map[string]any
	_ = json.Unmarshal([]byte(fmt.Sprintf(`{"verdict":%q,"reason":"why","deploy":{"service":"api","version":"v2","previous_revision":"v1","previous_version":"v1","started_at":"2026-11-25T12:00:00Z"},
		"phases":[],"checks":[],"detected_at":null,"rollback":%s,"settings":{"interval":"2s","warmup":"5s","monitor":"40s","on_failure":"rollback"},"deliveries":[],"ended_at":"2026-11-25T12:00:10Z"}`, verdict, rb)), &r)
	return r
}

// TestAPI runs every endpoint against a real store, each request and
// answer checked against the OpenAPI document.
func TestAPI(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, apiServer(t, open(t), false).URL)
			ingest, read, label := tokens["DW_TEST_INGEST"], tokens["DW_TEST_READ"], tokens["DW_TEST_LABEL"]
			create := func(key, service string, started time.Time) string {
				t.Helper()
				code, body := c.do(call{method: "POST", path: "/deploys", token: ingest, body: map[string]any{
					"key": key, "deploy": map[string]any{"service": service, "environment": "prod", "version": "v2", "previous_version": "v1",
						"started_at": started.Format(time.RFC3339), "triggered_by": "octocat", "commit_time": started.Add(-time.Hour).Format(time.RFC3339)}}})
				if code != http.StatusCreated {
					t.Fatalf("create %s: %d %s", key, code, body)
				}
				var out struct{ ID string }
				_ = json.Unmarshal(body, &out)
				return out.ID
			}

			id := create("watch-1", "api", t0)
			if code, body := c.do(call{method: "POST", path: "/deploys", token: ingest, body: map[string]any{
				"key": "watch-1", "deploy": map[string]any{"service": "api", "started_at": t0.Format(time.RFC3339)}}}); code != http.StatusOK || !strings.Contains(string(body), id) {
				t.Fatalf("a retried create: %d %s", code, body)
			}
			events := []map[string]any{
				{"seq": 1, "event": ev("phase_started", t0, `,"phase":"start"`)},
				{"seq": 2, "event": ev("started", t0, `,"deploy":{"service":"api","version":"v2","previous_revision":"v1","previous_version":"v1","started_at":"2026-11-25T12:00:00Z"}`)},
			}
			if code, body := c.do(call{method: "POST", path: "/deploys/" + id + "/events", token: ingest, body: map[string]any{"events": events, "report": report("in_progress", false)}}); code != http.StatusNoContent {
				t.Fatalf("events: %d %s", code, body)
			}
			code, body := c.do(call{method: "GET", path: "/deploys?service=api", token: read})
			var list struct {
				Deploys []deployJSON
				Next    string
			}
			if err := json.Unmarshal(body, &list); err != nil || code != 200 || len(list.Deploys) != 1 || list.Deploys[0].Verdict != store.InProgress ||
				list.Deploys[0].Deploy.PreviousVersion != "v1" || list.Deploys[0].Deploy.CommitTime == nil {
				t.Fatalf("list: %d %s", code, body)
			}
			code, body = c.do(call{method: "GET", path: "/deploys/" + id, token: read})
			var detail struct {
				Events []struct{ Seq int64 }
				Report map[string]any
			}
			if err := json.Unmarshal(body, &detail); err != nil || code != 200 || len(detail.Events) != 2 || detail.Report["verdict"] != "in_progress" {
				t.Fatalf("detail: %d %s", code, body)
			}
			// The verdict, and a label on it.
			done := []map[string]any{{"seq": 3, "event": ev("verdict", t0.Add(10*time.Second), `,"message":"failed: why"`)}}
			if code, body := c.do(call{method: "POST", path: "/deploys/" + id + "/events", token: ingest, body: map[string]any{"events": done, "report": report("failed", true)}}); code != 204 {
				t.Fatalf("verdict: %d %s", code, body)
			}
			if code, body := c.do(call{method: "POST", path: "/deploys/" + id + "/label", token: label, body: map[string]any{"label": "false_rollback", "note": "<script>alert(1)</script>"}}); code != 201 {
				t.Fatalf("label: %d %s", code, body)
			}
			code, body = c.do(call{method: "GET", path: "/deploys/" + id, token: read})
			if code != 200 || !strings.Contains(string(body), `"verdict":"failed"`) || !strings.Contains(string(body), `"by":"oncall"`) || !strings.Contains(string(body), `"performed":true`) {
				t.Fatalf("after the verdict: %d %s", code, body)
			}

			// Pages of a filtered listing.
			for i := range 6 {
				create(fmt.Sprintf("page-%d", i), []string{"api", "web"}[i%2], t0.Add(time.Duration(i+1)*time.Minute))
			}
			var keys []string
			cursor := ""
			for range 5 {
				code, body := c.do(call{method: "GET", path: "/deploys?service=api&limit=2&cursor=" + cursor, token: read})
				var page struct {
					Deploys []deployJSON
					Next    string
				}
				if err := json.Unmarshal(body, &page); err != nil || code != 200 {
					t.Fatalf("page: %d %s", code, body)
				}
				for _, d := range page.Deploys {
					keys = append(keys, d.Deploy.StartedAt.Format("15:04"))
				}
				if cursor = page.Next; cursor == "" {
					break
				}
			}
			if got := strings.Join(keys, " "); got != "12:05 12:03 12:01 12:00" {
				t.Fatalf("the pages of api's deploys: %s", got)
			}
			code, body = c.do(call{method: "GET", path: "/deploys?since=2026-11-25T12:02:00Z&until=2026-11-25T12:04:00Z", token: read})
			if code != 200 || strings.Count(string(body), `"id"`) != 2 {
				t.Fatalf("since/until: %d %s", code, body)
			}

			code, body = c.do(call{method: "GET", path: "/services", token: read})
			if code != 200 || !strings.Contains(string(body), `"service":"api","environments":["prod"],"deploys":4`) {
				t.Fatalf("services: %d %s", code, body)
			}
			code, body = c.do(call{method: "GET", path: "/services/api/dora?window=3650d", token: read, bad: true})
			if code != 400 || !strings.Contains(string(body), `"field":"window"`) {
				t.Fatalf("a window too long: %d %s", code, body)
			}
			code, body = c.do(call{method: "GET", path: "/services/api/dora?environment=prod", token: read})
			if code != 200 || !strings.Contains(string(body), `"bands_year":2024`) {
				t.Fatalf("dora: %d %s", code, body)
			}
		})
	}
}

// TestAPIRefusals: each bad request gets its status and a JSON error that
// names what is wrong; writes always need the right scope, checked before
// the body is read.
func TestAPIRefusals(t *testing.T) {
	st := stores(t)["sqlite"](t)
	hs := apiServer(t, st, true)
	c := newClient(t, hs.URL)
	ingest, read, label := tokens["DW_TEST_INGEST"], tokens["DW_TEST_READ"], tokens["DW_TEST_LABEL"]
	good := map[string]any{"key": "k1", "deploy": map[string]any{"service": "api", "started_at": t0.Format(time.RFC3339)}}
	code, body := c.do(call{method: "POST", path: "/deploys", token: ingest, body: good})
	if code != 201 {
		t.Fatalf("%d %s", code, body)
	}
	var created struct{ ID string }
	_ = json.Unmarshal(body, &created)
	cases := []struct {
		name   string
		call   call
		status int
		says   string
	}{
		{"an open read needs no token", call{method: "GET", path: "/deploys"}, 200, `"deploys"`},
		{"a write without a token", call{method: "POST", path: "/deploys", body: good, bad: true}, 401, "needs a bearer token"},
		{"a forged token", call{method: "POST", path: "/deploys", body: good, token: "ingest-0123456789abcdeX", bad: true}, 401, "not valid"},
		{"a truncated token", call{method: "POST", path: "/deploys", body: good, token: "ingest-0123456789", bad: true}, 401, "not valid"},
		{"a forged token on an open read", call{method: "GET", path: "/deploys", token: "nope", bad: true}, 401, "not valid"},
		{"a read token cannot ingest", call{method: "POST", path: "/deploys", body: good, token: read, bad: true}, 403, `does not have the ingest scope`},
		{"an ingest token cannot label", call{method: "POST", path: "/deploys/" + created.ID + "/label", body: map[string]any{"label": "incident", "at": t0}, token: ingest, bad: true}, 403, "label scope"},
		{"malformed JSON", call{method: "POST", path: "/deploys", body: `{"key": "k2", "deploy": {`, token: ingest, bad: true}, 400, "malformed JSON"},
		{"an unknown field", call{method: "POST", path: "/deploys", body: `{"key":"k2","deploy":{"service":"api","started_at":"2026-11-25T12:00:00Z"},"sneaky":1}`, token: ingest, bad: true}, 400, `"field":"sneaky"`},
		{"a wrong type", call{method: "POST", path: "/deploys", body: `{"key":"k2","deploy":{"service":7,"started_at":"2026-11-25T12:00:00Z"}}`, token: ingest, bad: true}, 400, `"field":"deploy.service"`},
		{"a missing field", call{method: "POST", path: "/deploys", body: map[string]any{"key": "k2", "deploy": map[string]any{"service": "api"}}, token: ingest, bad: true}, 400, `"field":"deploy.started_at"`},
		{"a key with a path in it", call{method: "POST", path: "/deploys", body: map[string]any{"key": "../etc", "deploy": map[string]any{"service": "api", "started_at": t0}}, token: ingest, bad: true}, 400, `"field":"key"`},
		{"an empty body", call{method: "POST", path: "/deploys", body: "", token: ingest, bad: true}, 400, "empty"},
		{"not JSON", call{method: "POST", path: "/deploys", body: "x", token: ingest, bad: true, headers: map[string]string{"Content-Type": "text/plain"}}, 415, "application/json"},
		{"a body over the limit", call{method: "POST", path: "/deploys", body: `{"key":"` + strings.Repeat("a", 2<<20) + `"}`, token: ingest, bad: true}, 413, "larger than"},
		{"an event of nothing", call{method: "POST", path: "/deploys/" + created.ID + "/events", body: map[string]any{"events": []any{map[string]any{"seq": 1, "event": map[string]any{"time": t0, "event": "exploded"}}}}, token: ingest, bad: true}, 400, `"field":"events[0].event.event"`},
		{"an event without a seq", call{method: "POST", path: "/deploys/" + created.ID + "/events", body: map[string]any{"events": []any{map[string]any{"event": ev("note", t0, "")}}}, token: ingest, bad: true}, 400, `"field":"events[0].seq"`},
		{"a report that is not one", call{method: "POST", path: "/deploys/" + created.ID + "/events", body: map[string]any{"events": []any{}, "report": map[string]any{"verdict": "great"}}, token: ingest}, 400, `"field":"report`},
		{"events of a deploy that is not there", call{method: "POST", path: "/deploys/0123abc/events", body: map[string]any{"events": []any{}}, token: ingest}, 404, "no deploy"},
		{"a path trick in an id", call{method: "GET", path: "/deploys/..%2F..%2Fetc%2Fpasswd", bad: true}, 400, `"field":"id"`},
		{"an id that is not there", call{method: "GET", path: "/deploys/ffffffffffffffff"}, 404, "no deploy"},
		{"a verdict that is not one", call{method: "GET", path: "/deploys?verdict=great", bad: true}, 400, `"field":"verdict"`},
		{"a forged cursor", call{method: "GET", path: "/deploys?cursor=bm9wZQ"}, 400, `"field":"cursor"`},
		{"a time that is not one", call{method: "GET", path: "/deploys?since=yesterday", bad: true}, 400, `"field":"since"`},
		{"a limit too large", call{method: "GET", path: "/deploys?limit=100000", bad: true}, 400, `"field":"limit"`},
		{"a label that is not one", call{method: "POST", path: "/deploys/" + created.ID + "/label", body: map[string]any{"label": "meh"}, token: label, bad: true}, 400, `"field":"label"`},
		{"an incident needs its time", call{method: "POST", path: "/deploys/" + created.ID + "/label", body: map[string]any{"label": "incident"}, token: label}, 400, `"field":"at"`},
		{"a Last-Event-ID that is not one", call{method: "GET", path: "/deploys/" + created.ID + "/events", headers: map[string]string{"Last-Event-ID": "x"}, bad: true}, 400, `"field":"Last-Event-ID"`},
		{"no such API", call{method: "GET", path: "/nope", bad: true}, 404, "no such API"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			code, body := c.do(tc.call)
			if code != tc.status || !strings.Contains(string(body), tc.says) {
				t.Fatalf("%d %s, want %d saying %s", code, body, tc.status, tc.says)
			}
			if code >= 400 && !json.Valid(body) {
				t.Fatalf("the error is not JSON: %s", body)
			}
		})
	}
}

// TestAuthBeforeBody: a write without a token is refused while its body
// is still coming: nothing of it is read.
func TestAuthBeforeBody(t *testing.T) {
	hs := apiServer(t, stores(t)["sqlite"](t), false)
	conn, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers announcing a megabyte, and only the start of it.
	fmt.Fprintf(conn, "POST /api/v1/deploys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{\"key\": ")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer before the body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// TestSecurityHeaders: every answer carries them, errors included.
func TestSecurityHeaders(t *testing.T) {
	hs := apiServer(t, stores(t)["sqlite"](t), true)
	for _, path := range []string{"/api/v1/deploys", "/api/v1/nope", "/health/live", "/metrics"} {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, resp.Header)
		}
	}
}

// TestEventStream follows a watch as Server-Sent Events: history first,
// then live; a reconnect with Last-Event-ID loses and repeats nothing;
// the stream ends at the verdict.
func TestEventStream(t *testing.T) {
	hs := apiServer(t, stores(t)["sqlite"](t), true)
	c := newClient(t, hs.URL)
	ingest := tokens["DW_TEST_INGEST"]
	_, body := c.do(call{method: "POST", path: "/deploys", token: ingest, body: map[string]any{"key": "sse", "deploy": map[string]any{"service": "api", "started_at": t0}}})
	var created struct{ ID string }
	_ = json.Unmarshal(body, &created)
	post := func(from, to int, last string) {
		var evs []map[string]any
		for i := from; i <= to; i++ {
			kind := "measured"
			if last != "" && i == to {
				kind = last
			}
			evs = append(evs, map[string]any{"seq": i, "event": ev(kind, t0.Add(time.Duration(i)*time.Second), "")})
		}
		if code, body := c.do(call{method: "POST", path: "/deploys/" + created.ID + "/events", token: ingest, body: map[string]any{"events": evs}}); code != 204 {
			t.Fatalf("%d %s", code, body)
		}
	}
	post(1, 3, "")
	open := func(lastID string, query ...string) (*bufio.Reader, func()) {
		req, _ := http.NewRequest("GET", hs.URL+"/api/v1/deploys/"+created.ID+"/events"+strings.Join(query, ""), nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream: %v %v", resp, err)
		}
		return bufio.NewReader(resp.Body), func() { resp.Body.Close() }
	}
	// next reads one event: its id and kind.
	next := func(r *bufio.Reader) (id, kind string) {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("the stream ended: %v", err)
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				kind = strings.TrimPrefix(line, "event: ")
			case line == "" && kind != "":
				return id, kind
			}
		}
	}
	r, stop := open("")
	var got []string
	for range 3 {
		id, _ := next(r)
		got = append(got, id)
	}
	post(4, 5, "")
	for range 2 {
		id, _ := next(r) // live
		got = append(got, id)
	}
	stop() // the connection drops
	post(6, 8, "")
	r, stop = open("5")
	defer stop()
	post(9, 10, "verdict")
	for {
		id, kind := next(r)
		if kind == "end" {
			break
		}
		got = append(got, id)
	}
	if want := "1 2 3 4 5 6 7 8 9 10"; strings.Join(got, " ") != want {
		t.Fatalf("events received %v, want %s", got, want)
	}
	// A page that rendered the events up to 8 begins after them; a
	// reconnect's Last-Event-ID wins over the page's start.
	for _, tc := range []struct{ lastID, query, first string }{{"", "?after=8", "9"}, {"9", "?after=2", "10"}} {
		r, stop := open(tc.lastID, tc.query)
		if id, _ := next(r); id != tc.first {
			t.Errorf("Last-Event-ID %q, %s: the first event is %s, want %s", tc.lastID, tc.query, id, tc.first)
		}
		stop()
	}
}

// The dashboard's cookie may read, never write: another site could make
// a browser send it.
func TestCookieReadsOnly(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hs := apiServer(t, st, false)
	do := func(method, path, cookie, body string) int {
		req, _ := http.NewRequestWithContext(t.Context(), method, hs.URL+path, strings.NewReader(body))
		req.AddCookie(&http.Cookie{Name: "deploywatch_token", Value: cookie})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := do(http.MethodGet, "/api/v1/deploys", tokens["DW_TEST_READ"], ""); got != 200 {
		t.Errorf("a read with a read token's cookie: %d, want 200", got)
	}
	if got := do(http.MethodGet, "/api/v1/deploys", "forged", ""); got != 401 {
		t.Errorf("a read with a forged cookie: %d, want 401", got)
	}
	create := `{"key":"k1","deploy":{"service":"api","started_at":"2026-11-30T10:00:00Z"}}`
	if got := do(http.MethodPost, "/api/v1/deploys", tokens["DW_TEST_INGEST"], create); got != 401 {
		t.Errorf("a write with an ingest token's cookie: %d, want 401", got)
	}
}

// TestDORAOfAKnownHistory fills a real store with a week of one service
// and checks every figure of GET /services/{service}/dora against values
// worked out by hand.
func TestDORAOfAKnownHistory(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			base := time.Now().UTC().Truncate(time.Second).Add(-10 * 24 * time.Hour)
			at := func(d time.Duration) *time.Time { v := base.Add(d); return &v }
			day, h, m := 24*time.Hour, time.Hour, time.Minute
			type dep struct {
				key, version, prev, verdict string
				start, detected, end        time.Duration
				hasDetected, rolledBack     bool
				commit                      *time.Time
				label                       string
			}
			history := []dep{
				{key: "d1", version: "v1", prev: "v0", verdict: "stable", start: 0, end: 10 * m, commit: at(-2 * h)},
				{key: "d2", version: "v2", prev: "v1", verdict: "failed", start: day, detected: day + 30*time.Second, hasDetected: true, end: day + m, rolledBack: true},
				{key: "d3", version: "v2", prev: "v1", verdict: "stable", start: day + 2*h, end: day + 2*h + 10*m, commit: at(day - h)},
				{key: "d4", version: "v3", prev: "v2", verdict: "failed", start: 2 * day, detected: 2*day + m, hasDetected: true, end: 2*day + 2*m, rolledBack: true},
				{key: "d5", version: "v4", prev: "v2", verdict: "stable", start: 2*day + h, end: 2*day + h + 10*m},
				{key: "d6", version: "v5", prev: "v4", verdict: "stable", start: 3 * day, end: 3*day + 10*m, label: store.LabelIncident},
				{key: "d7", version: "v6", prev: "v5", verdict: "inconclusive", start: 4 * day, end: 4*day + 20*m},
			}
			ids := map[string]string{}
			for _, d := range history {
				stored, _, err := st.CreateDeploy(t.Context(), store.Deploy{Key: d.key, Source: "cli", Service: "shop", Environment: "prod",
					Version: d.version, PreviousVersion: d.prev, StartedAt: *at(d.start), CommitTime: d.commit})
				if err != nil {
					t.Fatal(err)
				}
				p := store.Progress{Verdict: d.verdict, PreviousVersion: d.prev, EndedAt: at(d.end), RolledBack: d.rolledBack, RollbackOK: d.rolledBack}
				if d.hasDetected {
					p.DetectedAt = at(d.detected)
				}
				if err := st.Checkpoint(t.Context(), stored.ID, p); err != nil {
					t.Fatal(err)
				}
				if d.label != "" {
					if err := st.AddLabel(t.Context(), store.Label{DeployID: stored.ID, Label: d.label, At: *at(d.end + h), Who: "oncall"}); err != nil {
						t.Fatal(err)
					}
				}
				ids[d.key] = stored.ID
			}
			// Another service's v2, stable: it shows nothing of shop's.
			other, _, _ := st.CreateDeploy(t.Context(), store.Deploy{Key: "o1", Source: "cli", Service: "web", Environment: "prod", Version: "v3", StartedAt: *at(3 * day)})
			_ = st.Checkpoint(t.Context(), other.ID, store.Progress{Verdict: "stable", EndedAt: at(3*day + m)})

			c := newClient(t, apiServer(t, st, true).URL)
			code, body := c.do(call{method: "GET", path: "/services/shop/dora?environment=prod&window=30d"})
			var got doraJSON
			if err := json.Unmarshal(body, &got); err != nil || code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			near := func(what string, v *float64, want float64) {
				t.Helper()
				if v == nil || math.Abs(*v-want) > 1e-6 {
					t.Errorf("%s = %v, want %v", what, v, want)
				}
			}
			// 7 deploys ended in 30 days.
			near("deployment frequency", got.Frequency.Value, 7.0/30)
			// Stable deploys with a commit time: d1 2h10m, d3 3h10m; median 2h40m.
			near("lead time", got.LeadTime.Value, 9600)
			// 2 failed of 6 judged (the inconclusive one is not judged).
			near("change failure rate", got.Failure.Value, 2.0/6)
			// d2: 30s to d3's end, 2h9m30s; d4: 1m to d5's end, 1h9m; median.
			near("recovery time", got.Recovery.Value, (7770.0+4140)/2)
			// d2's v2 was deployed again and stable: a false rollback. d6
			// was stable, then an incident: a regression missed.
			j := got.Judge
			if j.Failed != 2 || j.Stable != 4 || j.Inconclusive != 1 || len(j.FalseRollbacks) != 1 || j.FalseRollbacks[0] != ids["d2"] ||
				len(j.Missed) != 1 || j.Missed[0] != ids["d6"] {
				t.Errorf("judge %+v; want 2 failed (d2 false), 4 stable (d6 missed), 1 inconclusive", j)
			}
			near("precision", j.Precision, 0.5)
			near("recall", j.Recall, 0.5)
			near("inconclusive share", j.InconclusiveShare, 1.0/7)
			if fmt.Sprint(j.Detection) != "[30 60]" {
				t.Errorf("detection times %v, want [30 60]", j.Detection)
			}
			if got.Frequency.Band != "high" || got.LeadTime.Band != "elite" || got.Recovery.Band != "high" {
				t.Errorf("bands: frequency %s, lead time %s, recovery %s; want high, elite, high", got.Frequency.Band, got.LeadTime.Band, got.Recovery.Band)
			}
		})
	}
}

// TestSlowAndOversizedClients: serve's HTTP server drops a client that
// sends its headers a byte at a time (slowloris) once the header timeout
// passes, and refuses headers over 64 KiB.
func TestSlowAndOversizedClients(t *testing.T) {
	st := stores(t)["sqlite"](t)
	cfg, err := config.LoadServe([]byte(fmt.Sprintf(apiServe, true)), "serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Config: cfg, Store: st, Logger: slog.New(slog.DiscardHandler),
		Env: func(k string) (string, bool) { v, ok := tokens[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httpServer(srv.Handler(), time.Second) // serve's settings, a shorter header timeout
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()

	t.Run("slowloris", func(t *testing.T) {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		request := "GET /api/v1/deploys HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 100)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if _, err := conn.Write([]byte{request[i%len(request)]}); err != nil {
				break // the server hung up
			}
			if time.Since(start) > 10*time.Second {
				t.Fatal("the server still reads a request whose headers never end")
			}
			<-tick.C
		}
		if took := time.Since(start); took < 900*time.Millisecond || took > 5*time.Second {
			t.Errorf("dropped after %s, want about the 1s header timeout", took)
		}
	})
	t.Run("oversized headers", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/api/v1/deploys", nil)
		req.Header.Set("X-Big", strings.Repeat("a", 128<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431", resp.StatusCode)
		}
	})
}
