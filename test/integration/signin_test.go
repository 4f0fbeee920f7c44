package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/cli"
	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/testsvc"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// guarded puts a real Prometheus behind a proxy that lets a request
// through only when check accepts it, and answers 403 otherwise, as a
// managed Prometheus does. It counts both.
func guarded(t *testing.T, promURL string, check func(*http.Request) error) (addr string, passed, refused *atomic.Int64) {
	t.Helper()
	target, _ := url.Parse(promURL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	passed, refused = &atomic.Int64{}, &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := check(r); err != nil {
			refused.Add(1)
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"message":%q}`, err.Error())
			return
		}
		passed.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, passed, refused
}

// watchSignedIn runs the config's watch of a bad release with env as the
// process's secrets and returns the exit code, the report and the output.
func watchSignedIn(t *testing.T, e *env, promURL, signIn string, env map[string]string) (int, *watch.Report, string) {
	t.Helper()
	text := strings.Replace(configFor(e.svc.Addr, promURL, ""), "    url: "+promURL+"\n", "    url: "+promURL+"\n"+signIn, 1)
	cfg := filepath.Join(e.dir, "deploywatch.yaml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	reportPath := filepath.Join(e.dir, "report.json")
	_ = os.Remove(reportPath)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := &syncBuffer{}
	code := cli.Run(ctx, []string{"run", "-f", cfg, "--version", "v2", "--report", reportPath}, out, out,
		cli.WithEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	var r *watch.Report
	if data, err := os.ReadFile(reportPath); err == nil {
		r = &watch.Report{}
		if err := json.Unmarshal(data, r); err != nil {
			t.Fatalf("report: %v", err)
		}
	}
	return code, r, out.String()
}

// TestSigV4WatchOfABadRelease: a real Prometheus behind a proxy that
// checks every request's AWS signature, as Amazon Managed Service for
// Prometheus does. The watch signs with the standard credential chain
// (here the environment), detects the bad release and rolls it back; with
// a wrong secret it stops at Start with exit 2, and nothing is deployed.
//
// Not parallel: the AWS credential chain reads the process environment.
func TestSigV4WatchOfABadRelease(t *testing.T) {
	if _, ok := testenv.PrometheusBinary(); !ok {
		testenv.Missing(t, "prometheus", "Debian package prometheus")
	}
	const id, secret = "AKIDDEPLOYWATCHTEST", "sigv4-integration-secret"
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": id, "AWS_SECRET_ACCESS_KEY": "a-wrong-secret", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_CONFIG_FILE": filepath.Join(t.TempDir(), "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(t.TempDir(), "none"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ENDPOINT_URL": "",
	} {
		t.Setenv(k, v)
	}
	e := newEnv(t, healthy, 50, 15*time.Second)
	verifier := &testenv.SigV4Verifier{Region: "eu-west-1", Service: "aps", Keys: map[string]testenv.AWSKey{id: {Secret: secret}}}
	promURL, passed, refused := guarded(t, e.prom.URL, verifier.Verify)
	signIn := "    sigv4: {region: eu-west-1}\n"
	e.svc.Stage(testsvc.Profile{Version: "v2", ErrorRatio: 0.3, Latency: 1})

	code, _, out := watchSignedIn(t, e, promURL, signIn, nil)
	if code != cli.ExitUsage || !strings.Contains(out, "metrics.prometheus") || !strings.Contains(out, "SignatureDoesNotMatch") {
		t.Fatalf("a wrong secret: exit %d, want 2 naming the source and the refusal\n%s", code, out)
	}
	if _, deploys, _ := e.svc.Current(); deploys != 0 {
		t.Fatalf("the deploy ran %d times after the sign-in failed", deploys)
	}
	if strings.Contains(out, "a-wrong-secret") {
		t.Error("the output shows the secret")
	}

	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	before := refused.Load()
	code, r, out := watchSignedIn(t, e, promURL, signIn, nil)
	if code != cli.ExitFailed || r == nil || r.Rollback == nil || !r.Rollback.OK {
		t.Fatalf("exit %d, want 1 with the release rolled back\n%s", code, out)
	}
	if cur, deploys, rollbacks := e.svc.Current(); deploys != 1 || rollbacks != 1 || cur.Version != "v1" {
		t.Fatalf("service runs %s after %d deploys and %d rollbacks", cur.Version, deploys, rollbacks)
	}
	if passed.Load() < 5 || refused.Load() != before {
		t.Errorf("%d signed queries passed and %d more were refused: want every query signed", passed.Load(), refused.Load()-before)
	}
	t.Logf("%d signed queries; %s", passed.Load(), r.Reason)
}

// TestOAuth2WatchOfABadRelease: the same behind an OAuth2 resource server
// whose tokens come from a client-credentials token endpoint and live 12
// seconds (renewed 10 s before they expire), so that the watch must renew
// them as it goes.
func TestOAuth2WatchOfABadRelease(t *testing.T) {
	if _, ok := testenv.PrometheusBinary(); !ok {
		testenv.Missing(t, "prometheus", "Debian package prometheus")
	}
	t.Parallel()
	const clientSecret = "oauth2-integration-secret"
	var mu sync.Mutex
	issued := map[string]time.Time{}
	var grants int
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		id, sec, _ := r.BasicAuth()
		if r.PostFormValue("grant_type") != "client_credentials" || id != "deploywatch" || sec != clientSecret {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		mu.Lock()
		grants++
		tok := fmt.Sprintf("tok-%d", grants)
		issued[tok] = time.Now().Add(12 * time.Second)
		mu.Unlock()
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":12}`, tok)
	}))
	defer tokens.Close()
	e := newEnv(t, healthy, 50, 15*time.Second)
	promURL, passed, refused := guarded(t, e.prom.URL, func(r *http.Request) error {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		defer mu.Unlock()
		if exp, ok := issued[tok]; !ok || time.Now().After(exp) {
			return fmt.Errorf("invalid or expired token")
		}
		return nil
	})
	signIn := fmt.Sprintf("    oauth2: {token_url: %q, client_id: deploywatch, client_secret_env: DW_OAUTH2_SECRET}\n", tokens.URL+"/token")
	e.svc.Stage(testsvc.Profile{Version: "v2", ErrorRatio: 0.3, Latency: 1})

	code, _, out := watchSignedIn(t, e, promURL, signIn, map[string]string{"DW_OAUTH2_SECRET": "wrong"})
	if code != cli.ExitUsage || !strings.Contains(out, "metrics.prometheus.oauth2: getting a token: the token endpoint answered HTTP 401: invalid_client") {
		t.Fatalf("a wrong secret: exit %d, want 2 naming the refusal\n%s", code, out)
	}
	if _, deploys, _ := e.svc.Current(); deploys != 0 {
		t.Fatalf("the deploy ran %d times after the sign-in failed", deploys)
	}
	code, r, out := watchSignedIn(t, e, promURL, signIn, map[string]string{"DW_OAUTH2_SECRET": clientSecret})
	if code != cli.ExitFailed || r == nil || r.Rollback == nil || !r.Rollback.OK {
		t.Fatalf("exit %d, want 1 with the release rolled back\n%s", code, out)
	}
	if refused.Load() != 0 || passed.Load() < 5 {
		t.Errorf("%d queries passed, %d refused: want every query with a valid token", passed.Load(), refused.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if grants < 2 {
		t.Errorf("%d token grants: the token was not renewed during the watch", grants)
	}
	if strings.Contains(out, clientSecret) {
		t.Error("the output shows the secret")
	}
	t.Logf("%d queries with %d tokens; %s", passed.Load(), grants, r.Reason)
}
