package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/server"
	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/store/sqlite"
	"github.com/deploywatch/deploywatch/internal/textutil"
)

// The recognisable secrets of the sweep: each one's value must appear in
// no output of any command, on any path.
var sweepSecrets = map[string]string{
	"SW_PROM_TOKEN":   "sweep-prom-bearer-7f3a",
	"SW_PROM_PASS":    "sweep-prom-password-91bc",
	"SW_OAUTH_SECRET": "sweep-oauth-client-secret-55de",
	"SW_DD_API":       "sweep-dd-api-key-0a1b",
	"SW_DD_APP":       "sweep-dd-app-key-2c3d",
	"SW_WEB_TOKEN":    "sweep-web-bearer-4e5f",
	"SW_SLACK":        "/services/T000/B000/sweep-slack-path-6a7b",
	"SW_GRAFANA":      "sweep-grafana-token-8c9d",
	"SW_DD_EVENTS":    "sweep-dd-events-key-aeaf",
	"SW_HOOK":         "sweep-webhook-secret-b0b1",
	"SW_LOGIN":        "sweep-smoke-password-c2c3",
}

// echoServer is the hostile or broken server of the sweep: it answers
// with everything it received (URL, headers, body), with status, so that
// a client that quotes an answer in its errors would quote the secrets it
// sent.
func echoServer(t *testing.T, status int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var b strings.Builder
		fmt.Fprintf(&b, `{"status":"error","error":"you sent %s %s`, r.Method, r.URL.String())
		for k, v := range r.Header {
			fmt.Fprintf(&b, " %s=%s", k, strings.Join(v, ","))
		}
		fmt.Fprintf(&b, ` body=%s","errors":["%s"],"message":"%s"}`, strings.ReplaceAll(string(body), `"`, `'`), r.Header.Get("Authorization"), r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, b.String())
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestNoSecretInAnyOutput runs watches whose every source, sink and smoke
// check meets a server that refuses and echoes what it was sent (401,
// 403, 500), one that answers garbage (200), a TLS error and a timeout,
// and greps everything the CLI wrote: its output as text and as JSON, the
// report and the state file.
func TestNoSecretInAnyOutput(t *testing.T) {
	sources := map[string]string{
		"prometheus bearer": "  prometheus: {url: %[1]s, bearer_token_env: SW_PROM_TOKEN, timeout: 1s, retries: 0}\n",
		"prometheus basic":  "  prometheus: {url: %[1]s, basic_auth: {username: u, password_env: SW_PROM_PASS}, timeout: 1s, retries: 0}\n",
		"prometheus oauth2": "  prometheus: {url: %[1]s, oauth2: {token_url: %[1]s/token, client_id: c, client_secret_env: SW_OAUTH_SECRET}, timeout: 1s, retries: 0}\n",
		"datadog":           "  datadog: {url: %[1]s, api_key_env: SW_DD_API, app_key_env: SW_DD_APP, timeout: 1s, retries: 0}\n",
		"http":              "  http: {url: %[1]s/value, bearer_token_env: SW_WEB_TOKEN, value: .v, timeout: 1s}\n",
	}
	servers := map[string]func(t *testing.T) string{
		"refused 401":    func(t *testing.T) string { return echoServer(t, http.StatusUnauthorized).URL },
		"refused 403":    func(t *testing.T) string { return echoServer(t, http.StatusForbidden).URL },
		"failing 500":    func(t *testing.T) string { return echoServer(t, http.StatusInternalServerError).URL },
		"garbage 200":    func(t *testing.T) string { return echoServer(t, http.StatusOK).URL },
		"bad request":    func(t *testing.T) string { return echoServer(t, http.StatusBadRequest).URL },
		"TLS error":      func(t *testing.T) string { return strings.Replace(echoServer(t, 200).URL, "http://", "https://", 1) },
		"no one listens": func(t *testing.T) string { return "http://127.0.0.1:1" },
	}
	for srcName, srcTmpl := range sources {
		for srvName, server := range servers {
			t.Run(srcName+", "+srvName, func(t *testing.T) {
				t.Parallel()
				base := server(t)
				dir := t.TempDir()
				smoke := filepath.Join(dir, "smoke.yaml")
				_ = os.WriteFile(smoke, []byte(`env: [SW_LOGIN]
checks:
  - name: login
    method: POST
    path: /login?password=${SW_LOGIN}
    headers: {Authorization: "Bearer ${SW_LOGIN}"}
    body: '{"password": "${SW_LOGIN}"}'
    expect: {status: [200], jq: ['.ok']}
`), 0o600)
				checks := ""
				if srcName == "http" {
					checks = "checks:\n  - {name: v, query: v, fail: \"> 1\"}\n"
				}
				cfg := filepath.Join(dir, "deploywatch.yaml")
				_ = os.WriteFile(cfg, []byte(fmt.Sprintf(`service: api
target:
  command:
    deploy: "echo deploying"
    rollback: "echo rolling back"
metrics:
`+srcTmpl+`  selector: 'job="api"'
  scrape_interval: 1s
%[3]sbaseline: {window: 1m}
phases: {warmup: 0s, verify: 2s, monitor: 2s, interval: 500ms}
verify:
  smoke: smoke.yaml
  base_url: %[1]s
notify:
  - slack: {webhook_url_env: SW_SLACK}
  - grafana: {url: "%[1]s", token_env: SW_GRAFANA}
  - datadog: {api_key_env: SW_DD_EVENTS, url: "%[1]s"}
  - webhook: {url: "%[1]s/hook", secret_env: SW_HOOK}
`, base, base, checks)), 0o600)
				env := map[string]string{}
				for k, v := range sweepSecrets {
					env[k] = v
				}
				env["SW_SLACK"] = base + sweepSecrets["SW_SLACK"]
				for _, output := range []string{"text", "json"} {
					var out bytes.Buffer
					report, state := filepath.Join(dir, output+".report.json"), filepath.Join(dir, output+".state")
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					code := Run(ctx, []string{"run", "-f", cfg, "--version", "v2", "--report", report, "--state", state, "-o", output}, &out, &out,
						WithEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
					cancel()
					files := map[string]string{"output (" + output + ")": out.String()}
					for _, f := range []string{report, state} {
						if b, err := os.ReadFile(f); err == nil {
							files[filepath.Base(f)] = string(b)
						}
					}
					for where, text := range files {
						for name, secret := range sweepSecrets {
							if strings.Contains(text, secret) {
								i := strings.Index(text, secret)
								t.Errorf("exit %d: $%s leaked into the %s: …%s…", code, name, where, text[max(0, i-150):min(len(text), i+len(secret)+20)])
							}
						}
					}
				}
			})
		}
	}
}

// TestNoSecretReachesServe sends a watch whose source and sinks meet
// servers that echo what they got to serve (--server), and greps what
// serve keeps and shows: the store's database file, the API's answers,
// /metrics and the dashboard's pages.
func TestNoSecretReachesServe(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "deploywatch.db")
	st, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	serveCfg, err := config.LoadServe([]byte("store: {sqlite: deploywatch.db}\napi:\n  open_read: true\n  tokens:\n    - {name: ci, scopes: [ingest, read], token_env: SW_SERVE}\n"), filepath.Join(dir, "serve.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const serveToken = "sweep-serve-ingest-token-d4d5"
	srv, err := server.New(server.Options{Config: serveCfg, Store: st, Logger: slog.New(slog.DiscardHandler),
		Env: func(k string) (string, bool) { return serveToken, k == "SW_SERVE" }})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	// 500, not 401: a refusal would stop the watch at Start, before serve
	// hears of it.
	echo := echoServer(t, http.StatusInternalServerError).URL
	cfg := filepath.Join(dir, "deploywatch.yaml")
	_ = os.WriteFile(cfg, []byte(fmt.Sprintf(`service: api
target:
  command:
    deploy: "echo deploying"
    rollback: "echo rolling back"
metrics:
  prometheus: {url: %[1]s, bearer_token_env: SW_PROM_TOKEN, timeout: 1s, retries: 0}
  selector: 'job="api"'
  scrape_interval: 1s
phases: {warmup: 0s, verify: 1s, monitor: 2s, interval: 500ms}
notify:
  - slack: {webhook_url_env: SW_SLACK}
  - grafana: {url: "%[1]s", token_env: SW_GRAFANA}
  - datadog: {api_key_env: SW_DD_EVENTS, url: "%[1]s"}
  - webhook: {url: "%[1]s/hook", secret_env: SW_HOOK}
`, echo)), 0o600)
	env := map[string]string{"DEPLOYWATCH_SERVER_TOKEN": serveToken}
	for k, v := range sweepSecrets {
		env[k] = v
	}
	env["SW_SLACK"] = echo + sweepSecrets["SW_SLACK"]
	var out bytes.Buffer
	code := Run(context.Background(), []string{"run", "-f", cfg, "--version", "v2", "--server", hs.URL}, &out, &out,
		WithEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	if code != ExitInconclusive {
		t.Fatalf("exit %d, want 3 (the source refuses)\n%s", code, out.String())
	}
	page, err := st.ListDeploys(context.Background(), store.Query{})
	if err != nil || len(page.Deploys) != 1 {
		t.Fatalf("serve recorded %d deploys (%v)\n%s", len(page.Deploys), err, out.String())
	}
	id := page.Deploys[0].ID
	shown := map[string]string{"output": out.String()}
	for _, path := range []string{"/api/v1/deploys", "/api/v1/deploys/" + id, "/api/v1/deploys/" + id + "/events", "/metrics", "/", "/deploys/" + id, "/services/api", "/judge"} {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
		shown[path] = string(b)
	}
	st.Close()
	db, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	shown["the store's database"] = string(db)
	if wal, err := os.ReadFile(dbPath + "-wal"); err == nil {
		shown["the store's write-ahead log"] = string(wal)
	}
	if !strings.Contains(shown["/api/v1/deploys/"+id], "could not") && !strings.Contains(shown["/api/v1/deploys/"+id], "inconclusive") {
		t.Errorf("the deploy's record does not hold its report: %s", textutil.Truncate(shown["/api/v1/deploys/"+id], 300))
	}
	secrets := maps.Clone(sweepSecrets)
	secrets["DEPLOYWATCH_SERVER_TOKEN"] = serveToken
	for where, text := range shown {
		for name, secret := range secrets {
			if i := strings.Index(text, secret); i >= 0 {
				t.Errorf("$%s reached %s: …%s…", name, where, text[max(0, i-120):min(len(text), i+len(secret)+20)])
			}
		}
	}
}
