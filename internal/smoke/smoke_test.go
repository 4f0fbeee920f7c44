package smoke

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// service is a server with the behaviours smoke tests meet in practice.
func service(t *testing.T) *httptest.Server {
	t.Helper()
	var flaky atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok","version":"1.2.3"}`))
	})
	mux.HandleFunc("GET /degraded", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"degraded"}`))
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("GET /html", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>oops</html>")) })
	mux.HandleFunc("GET /old", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/api/v1/status", http.StatusFound) })
	mux.HandleFunc("GET /hangup", func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ User, Password string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		if in.Password != "s3cret-pw" {
			http.Error(w, `{"error":"bad password"}`, http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"token":"tok-123","user":{"id":42}}`))
	})
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-123" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-Served-By", "api-7f9c")
		w.Write([]byte(`{"id":` + r.PathValue("id") + `}`))
	})
	mux.HandleFunc("GET /settling", func(w http.ResponseWriter, r *http.Request) {
		if flaky.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func suite(t *testing.T, yaml string) *Suite {
	t.Helper()
	s, err := Load([]byte(yaml), "smoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func runSuite(t *testing.T, s *Suite, base string) Report {
	t.Helper()
	env := func(k string) (string, bool) {
		if k == "LOGIN_PASSWORD" {
			return "s3cret-pw", true
		}
		return "", false
	}
	rep, err := s.Run(context.Background(), Options{BaseURL: base, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestChecksAgainstARealServer(t *testing.T) {
	srv := service(t)
	cases := []struct {
		name   string
		check  string
		pass   bool
		reason string
	}{
		{"the seed's jq assertion", "path: /api/v1/status\n    expect: {jq: ['.status == \"ok\"']}", true, ""},
		{"a false jq names the expression and the value", "path: /degraded\n    expect: {jq: ['.status == \"ok\"']}", false, `jq .status == "ok" was false, want true (body {"status":"degraded"})`},
		{"invalid JSON", "path: /html\n    expect: {jq: ['.status']}", false, "the body is not JSON"},
		{"wrong status", "path: /missing", false, "status 404, want 2xx"},
		{"a redirect is an answer", "path: /old", false, "status 302, want 2xx (a redirect to /api/v1/status; set follow_redirects to follow it)"},
		{"a followed redirect", "path: /old\n    follow_redirects: true\n    expect: {contains: ['\"ok\"']}", true, ""},
		{"slow past the timeout", "path: /slow\n    timeout: 200ms", false, "no answer within 200ms"},
		{"too slow for max_latency", "path: /api/v1/status\n    expect: {max_latency: 1ns}", false, "want within 1ns"},
		{"a closed connection is a failure", "path: /hangup", false, "the request failed"},
		{"refused is a failure", "path: http://127.0.0.1:1/x", false, "connection refused"},
		{"body regex", "path: /api/v1/status\n    expect: {regex: ['\"version\":\"1\\.\\d+']}", true, ""},
		{"header pattern", "path: /api/v1/status\n    expect: {headers: {Content-Type: '^application/json'}}", true, ""},
		{"expected error status", "path: /missing\n    expect: {status: [404]}", true, ""},
		{"retries until the pods settle", "path: /settling\n    retries: 3\n    backoff: 10ms", true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := runSuite(t, suite(t, "checks:\n  - name: c\n    "+c.check+"\n"), srv.URL)
			r := rep.Results[0]
			if r.Passed != c.pass || !strings.Contains(strings.Join(r.Reasons, "; "), c.reason) {
				t.Fatalf("passed=%v reasons=%q; want %v containing %q", r.Passed, r.Reasons, c.pass, c.reason)
			}
		})
	}
}

func TestCapturesDependenciesAndSecrets(t *testing.T) {
	srv := service(t)
	s := suite(t, `env: [LOGIN_PASSWORD]
checks:
  - name: login
    method: POST
    path: /login
    body: '{"user":"smoke","password":"${LOGIN_PASSWORD}"}'
    capture: {token: .token, user_id: .user.id}
  - name: profile
    path: /users/${user_id}
    headers: {Authorization: 'Bearer ${token}'}
    expect:
      jq: ['.id == 42']
      headers: {X-Served-By: '^api-'}
  - name: status
    path: /api/v1/status
`)
	rep := runSuite(t, s, srv.URL)
	if !rep.OK() {
		t.Fatalf("%+v", rep.Results)
	}
	if got := rep.Results[1].URL; got != srv.URL+"/users/42" {
		t.Errorf("profile URL %q", got)
	}
	// The same suite with a wrong password: login fails, profile is not run,
	// and the secret never shows.
	bad := suite(t, strings.Replace(`env: [LOGIN_PASSWORD]
checks:
  - name: login
    method: POST
    path: /login?pw=${LOGIN_PASSWORD}
    body: '{"password":"wrong"}'
    capture: {token: .token}
  - name: profile
    path: /users/1
    headers: {Authorization: 'Bearer ${token}'}
`, "", "", 1))
	rep = runSuite(t, bad, srv.URL)
	out, _ := json.Marshal(rep)
	if rep.OK() || strings.Contains(string(out), "s3cret-pw") {
		t.Fatalf("report leaks or passes: %s", out)
	}
	if !strings.Contains(rep.Results[1].Reasons[0], "not run: it needs login") {
		t.Errorf("dependent check: %q", rep.Results[1].Reasons)
	}
	if !strings.Contains(rep.Results[0].URL, "pw=***") {
		t.Errorf("URL %q does not mask the secret", rep.Results[0].URL)
	}
}

func TestTLSWithACAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	if rep := runSuite(t, suite(t, "checks:\n  - name: tls\n    path: /\n"), srv.URL); rep.OK() || !strings.Contains(rep.Results[0].Reasons[0], "certificate") {
		t.Fatalf("an unknown CA was trusted: %+v", rep.Results)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if rep := runSuite(t, suite(t, "tls: {ca_file: "+ca+"}\nchecks:\n  - name: tls\n    path: /\n"), srv.URL); !rep.OK() {
		t.Fatalf("with the CA: %+v", rep.Results)
	}
}

func TestJUnit(t *testing.T) {
	srv := service(t)
	rep := runSuite(t, suite(t, "checks:\n  - name: ok\n    path: /api/v1/status\n  - name: broken\n    path: /missing\n"), srv.URL)
	var buf bytes.Buffer
	if err := rep.WriteJUnit(&buf, "smoke.yaml"); err != nil {
		t.Fatal(err)
	}
	var js junitSuite
	if err := xml.Unmarshal(buf.Bytes(), &js); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if js.Tests != 2 || js.Failures != 1 || js.Cases[1].Failure == nil || !strings.Contains(js.Cases[1].Failure.Message, "status 404") {
		t.Fatalf("%+v", js)
	}
}

func TestBadSuites(t *testing.T) {
	cases := map[string]string{
		"bad-jq":        "bad-jq.bad.yaml:5:12: checks[0].expect.jq[0]: jq",
		"unknown-var":   "checks[0].path: ${user_id} is neither captured by a check nor listed under env",
		"cycle":         "cycle: a -> b -> a",
		"unknown-field": "unknown-field.bad.yaml:5:7: checks[0].expect.code: unknown field",
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := LoadFile(filepath.Join("testdata", name+".bad.yaml"))
			if err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), "testdata/", ""), want) {
				t.Fatalf("err = %v, want %q", err, want)
			}
		})
	}
	if _, err := LoadFile("../../examples/smoke.yaml"); err != nil {
		t.Fatalf("the example suite: %v", err)
	}
}

// BenchmarkSuite50 runs 50 checks against a local server that answers in
// 20 ms, in order and concurrently (8 at a time):
//
//	go test ./internal/smoke -run '^$' -bench Suite50
func BenchmarkSuite50(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	var sb strings.Builder
	sb.WriteString("checks:\n")
	for i := range 50 {
		sb.WriteString("  - name: c" + string(rune('a'+i/26)) + string(rune('a'+i%26)) + "\n    path: /x\n    expect: {jq: ['.status == \"ok\"']}\n")
	}
	s, err := Load([]byte(sb.String()), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for _, conc := range []int{1, 8} {
		name := map[int]string{1: "sequential", 8: "concurrent-8"}[conc]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				rep, err := s.Run(context.Background(), Options{BaseURL: srv.URL, Concurrency: conc})
				if err != nil || !rep.OK() {
					b.Fatalf("%v %+v", err, rep)
				}
			}
		})
	}
}
