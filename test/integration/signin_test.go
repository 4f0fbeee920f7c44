package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/cli"
	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/testsvc"
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

// watchSignedIn runs the config's watch of the staged release through
// promURL, signing in as signIn says, with secrets as the CLI's
// environment (nil: the process's).
func watchSignedIn(t *testing.T, e *env, promURL, signIn string, secrets map[string]string) result {
	t.Helper()
	e.promURL, e.promSettings, e.secrets = promURL, signIn, secrets
	return e.run(t, "")
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

	r := watchSignedIn(t, e, promURL, signIn, nil)
	code, out := r.code, r.out
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
	r = watchSignedIn(t, e, promURL, signIn, nil)
	code, out = r.code, r.out
	if code != cli.ExitFailed || r.report == nil || r.report.Rollback == nil || !r.report.Rollback.OK {
		t.Fatalf("exit %d, want 1 with the release rolled back\n%s", code, out)
	}
	if cur, deploys, rollbacks := e.svc.Current(); deploys != 1 || rollbacks != 1 || cur.Version != "v1" {
		t.Fatalf("service runs %s after %d deploys and %d rollbacks", cur.Version, deploys, rollbacks)
	}
	if passed.Load() < 5 || refused.Load() != before {
		t.Errorf("%d signed queries passed and %d more were refused: want every query signed", passed.Load(), refused.Load()-before)
	}
	t.Logf("%d signed queries; %s", passed.Load(), r.report.Reason)
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

	r := watchSignedIn(t, e, promURL, signIn, map[string]string{"DW_OAUTH2_SECRET": "wrong"})
	code, out := r.code, r.out
	if code != cli.ExitUsage || !strings.Contains(out, "metrics.prometheus.oauth2: getting a token: the token endpoint answered HTTP 401: invalid_client") {
		t.Fatalf("a wrong secret: exit %d, want 2 naming the refusal\n%s", code, out)
	}
	if _, deploys, _ := e.svc.Current(); deploys != 0 {
		t.Fatalf("the deploy ran %d times after the sign-in failed", deploys)
	}
	r = watchSignedIn(t, e, promURL, signIn, map[string]string{"DW_OAUTH2_SECRET": clientSecret})
	code, out = r.code, r.out
	if code != cli.ExitFailed || r.report == nil || r.report.Rollback == nil || !r.report.Rollback.OK {
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
	t.Logf("%d queries with %d tokens; %s", passed.Load(), grants, r.report.Reason)
}
