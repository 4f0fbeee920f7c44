package signin

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/metrics"
	"github.com/deploywatch/deploywatch/internal/metrics/prometheus"
	"github.com/deploywatch/deploywatch/internal/testenv"
)

// isolateAWS leaves the AWS credential chain only what the test sets.
func isolateAWS(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_PROFILE": "", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
		"AWS_SESSION_TOKEN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_STS": "",
	} {
		t.Setenv(k, v)
	}
}

// promServer answers the Prometheus API when check accepts the request,
// and 403 with check's reason otherwise, as AMP does.
func promServer(t *testing.T, check func(*http.Request) error) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := check(r); err != nil {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"message":%q}`, err.Error())
			return
		}
		if err := r.ParseForm(); err != nil || r.Form.Get("query") == "" {
			http.Error(w, "no query", http.StatusBadRequest)
			return
		}
		served.Add(1)
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"scalar","result":[%d,"1"]}}`, time.Now().Unix())
	}))
	t.Cleanup(srv.Close)
	return srv, &served
}

// query runs one query through a transport as deploywatch's source does.
func query(t *testing.T, url string, rt http.RoundTripper) error {
	t.Helper()
	c, err := prometheus.New(prometheus.Config{URL: url, Transport: rt, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c.Probe(context.Background())
}

func TestSigV4SignsEveryQuery(t *testing.T) {
	isolateAWS(t)
	const id, secret = "AKIDDEPLOYWATCH", "s3cr3t/sigv4+KEY"
	t.Setenv("AWS_ACCESS_KEY_ID", id)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	v := &testenv.SigV4Verifier{Region: "eu-west-1", Service: "aps", Keys: map[string]testenv.AWSKey{id: {Secret: secret}}}
	srv, served := promServer(t, v.Verify)

	rt, err := Transport(context.Background(), Options{SigV4: &config.SigV4{Region: "eu-west-1"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := query(t, srv.URL+"/workspaces/ws-1", rt); err != nil {
			t.Fatalf("a signed query was refused: %v", err)
		}
	}
	if served.Load() != 3 {
		t.Errorf("served %d queries, want 3", served.Load())
	}

	// The same server refuses what is signed for another region.
	other, err := Transport(context.Background(), Options{SigV4: &config.SigV4{Region: "us-east-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := query(t, srv.URL, other); !errors.Is(err, metrics.ErrSignIn) {
		t.Errorf("signed for the wrong region: %v, want a sign-in error", err)
	}
}

func TestSigV4Refusals(t *testing.T) {
	const id, secret = "AKIDDEPLOYWATCH", "the-right-secret"
	cases := []struct {
		name     string
		env      map[string]string
		atStart  string // the error Transport gives, or "" for none
		atServer string // the error the server's refusal gives
	}{
		{name: "no credentials anywhere", atStart: "metrics.prometheus.sigv4: could not get SigV4 credentials"},
		{name: "wrong secret", env: map[string]string{"AWS_ACCESS_KEY_ID": id, "AWS_SECRET_ACCESS_KEY": "a-wrong-secret"}, atServer: "SignatureDoesNotMatch"},
		{name: "unknown key", env: map[string]string{"AWS_ACCESS_KEY_ID": "AKIDNOBODY", "AWS_SECRET_ACCESS_KEY": secret}, atServer: "InvalidClientTokenId"},
		{name: "expired session", env: map[string]string{"AWS_ACCESS_KEY_ID": "ASIASESSION", "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": "an-expired-token"}, atServer: "ExpiredToken"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			isolateAWS(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			v := &testenv.SigV4Verifier{Region: "eu-west-1", Service: "aps", Keys: map[string]testenv.AWSKey{
				id: {Secret: secret}, "ASIASESSION": {Secret: secret, Token: "the-current-token"},
			}}
			srv, served := promServer(t, v.Verify)
			rt, err := Transport(context.Background(), Options{SigV4: &config.SigV4{Region: "eu-west-1"}})
			if c.atStart != "" {
				if err == nil || !strings.Contains(err.Error(), c.atStart) {
					t.Fatalf("Transport: %v, want %q", err, c.atStart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			err = query(t, srv.URL, rt)
			if !errors.Is(err, metrics.ErrSignIn) || !strings.Contains(err.Error(), c.atServer) {
				t.Errorf("query: %v, want a sign-in error saying %s", err, c.atServer)
			}
			if strings.Contains(err.Error(), secret) {
				t.Error("the error shows the secret")
			}
			if served.Load() != 0 {
				t.Error("the server answered a refused query")
			}
		})
	}
}

func TestSigV4AssumesRole(t *testing.T) {
	isolateAWS(t)
	const baseID, baseSecret = "AKIDBASE", "base-secret"
	const roleID, roleSecret, roleToken = "ASIAROLE", "role-secret", "role-session-token"
	const roleARN = "arn:aws:iam::123456789012:role/deploywatch-reader"
	stsVerifier := &testenv.SigV4Verifier{Region: "eu-west-1", Service: "sts", Keys: map[string]testenv.AWSKey{baseID: {Secret: baseSecret}}}
	var assumed atomic.Int64
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := stsVerifier.Verify(r); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "AssumeRole" || r.Form.Get("RoleArn") != roleARN {
			http.Error(w, fmt.Sprintf("want AssumeRole of %s, got %v", roleARN, r.Form), http.StatusBadRequest)
			return
		}
		assumed.Add(1)
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/deploywatch-reader/%s</Arn><AssumedRoleId>AROAEXAMPLE:s</AssumedRoleId></AssumedRoleUser>
<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>
</AssumeRoleResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>`,
			r.Form.Get("RoleSessionName"), roleID, roleSecret, roleToken, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	}))
	defer sts.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", baseID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", baseSecret)
	t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)

	// Only the role's credentials open the workspace.
	v := &testenv.SigV4Verifier{Region: "eu-west-1", Service: "aps", Keys: map[string]testenv.AWSKey{roleID: {Secret: roleSecret, Token: roleToken}}}
	srv, served := promServer(t, v.Verify)
	rt, err := Transport(context.Background(), Options{SigV4: &config.SigV4{Region: "eu-west-1", RoleARN: roleARN}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := query(t, srv.URL, rt); err != nil {
			t.Fatalf("query with the role's credentials: %v", err)
		}
	}
	if served.Load() != 2 || assumed.Load() != 1 {
		t.Errorf("served %d queries with %d AssumeRole calls, want 2 with 1 (the role's credentials are cached)", served.Load(), assumed.Load())
	}
}

// tokenServer is an OAuth2 token endpoint for the client-credentials grant
// (RFC 6749 section 4.4) and a resource server that accepts its tokens.
type tokenServer struct {
	clientID, secret string
	scope            string
	lifetime         time.Duration
	mu               sync.Mutex
	issued           map[string]time.Time // token → expiry
	grants           int
}

func (s *tokenServer) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	id, secret, ok := r.BasicAuth()
	if !ok { // client_secret_post is the other documented way
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	switch {
	case r.Method != http.MethodPost || r.PostFormValue("grant_type") != "client_credentials":
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"unsupported_grant_type"}`)
		return
	case id != s.clientID || secret != s.secret:
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_client","error_description":"client authentication failed"}`)
		return
	case r.PostFormValue("scope") != s.scope:
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"invalid_scope","error_description":"want %s"}`, s.scope)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grants++
	tok := fmt.Sprintf("token-%d", s.grants)
	s.issued[tok] = time.Now().Add(s.lifetime)
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(s.lifetime.Seconds())})
}

// accepts checks a request's bearer token.
func (s *tokenServer) accepts(r *http.Request) error {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, known := s.issued[tok]
	switch {
	case !ok || !known:
		return errors.New("invalid token")
	case time.Now().After(exp):
		return errors.New("token expired")
	}
	return nil
}

func TestOAuth2ClientCredentials(t *testing.T) {
	ts := &tokenServer{clientID: "deploywatch", secret: "oauth-client-secret", scope: "metrics:read", lifetime: 5 * time.Second, issued: map[string]time.Time{}}
	tokens := httptest.NewServer(http.HandlerFunc(ts.token))
	defer tokens.Close()
	srv, served := promServer(t, ts.accepts)

	o := Options{OAuth2: &config.OAuth2{TokenURL: tokens.URL, ClientID: "deploywatch", Scopes: []string{"metrics:read"}}, OAuth2ClientSecret: "oauth-client-secret"}
	rt, err := Transport(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := query(t, srv.URL, rt); err != nil {
			t.Fatalf("query with a token: %v", err)
		}
	}
	ts.mu.Lock()
	grants := ts.grants
	ts.mu.Unlock()
	// A token that expires within oauth2's 10 s margin is fetched anew, so
	// a 5 s token is renewed for every request: none is sent expired.
	if served.Load() != 3 || grants < 2 {
		t.Errorf("served %d with %d grants: want 3 served, and the short-lived token renewed", served.Load(), grants)
	}

	cases := []struct {
		name string
		o    Options
		want string
	}{
		{"wrong secret", Options{OAuth2: o.OAuth2, OAuth2ClientSecret: "wrong"}, "metrics.prometheus.oauth2: getting a token: the token endpoint answered HTTP 401: invalid_client: client authentication failed"},
		{"wrong scope", Options{OAuth2: &config.OAuth2{TokenURL: tokens.URL, ClientID: "deploywatch", Scopes: []string{"admin"}}, OAuth2ClientSecret: "oauth-client-secret"}, "invalid_scope"},
		{"no token endpoint", Options{OAuth2: &config.OAuth2{TokenURL: "http://127.0.0.1:1/token", ClientID: "deploywatch"}, OAuth2ClientSecret: "x"}, "connection refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Transport(context.Background(), c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), "oauth-client-secret") {
				t.Error("the error shows the secret")
			}
		})
	}
}

func TestGoogleServiceAccount(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	const email = "deploywatch@project.iam.gserviceaccount.com"
	ts := &tokenServer{issued: map[string]time.Time{}, lifetime: time.Hour}
	var tokenURL string
	// Google's token endpoint for service accounts: a JWT bearer grant
	// (RFC 7523) signed RS256 by the account's key.
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.PostFormValue("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"unsupported_grant_type"}`)
			return
		}
		claims, err := verifyJWT(r.PostFormValue("assertion"), &key.PublicKey)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"invalid_grant","error_description":%q}`, err.Error())
			return
		}
		if claims["iss"] != email || claims["aud"] != tokenURL || claims["scope"] != GoogleScope {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant","error_description":"wrong claims"}`)
			return
		}
		ts.mu.Lock()
		ts.grants++
		tok := fmt.Sprintf("ya29.token-%d", ts.grants)
		ts.issued[tok] = time.Now().Add(time.Hour)
		ts.mu.Unlock()
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, tok)
	}))
	defer tokens.Close()
	tokenURL = tokens.URL + "/token"
	srv, served := promServer(t, ts.accepts)

	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))})
	account, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "project", "private_key_id": "k1", "private_key": string(keyPEM),
		"client_email": email, "client_id": "1", "token_uri": tokenURL,
	})
	path := filepath.Join(t.TempDir(), "account.json")
	if err := os.WriteFile(path, account, 0o600); err != nil {
		t.Fatal(err)
	}

	// Application Default Credentials: the file GOOGLE_APPLICATION_CREDENTIALS names.
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
	rt, err := Transport(context.Background(), Options{Google: &config.Google{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := query(t, srv.URL, rt); err != nil {
		t.Fatalf("query with Google's token: %v", err)
	}
	if served.Load() != 1 {
		t.Errorf("served %d, want 1", served.Load())
	}

	// Another key for the same account is refused at Start.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	account, _ = json.Marshal(map[string]string{
		"type": "service_account", "private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(other))})),
		"client_email": email, "token_uri": tokenURL,
	})
	wrong := filepath.Join(t.TempDir(), "wrong.json")
	_ = os.WriteFile(wrong, account, 0o600)
	_, err = Transport(context.Background(), Options{Google: &config.Google{CredentialsFile: wrong}})
	if err == nil || !strings.Contains(err.Error(), "metrics.prometheus.google: getting a token") || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("a wrong key: %v, want a refusal at Start", err)
	}
	_, err = Transport(context.Background(), Options{Google: &config.Google{CredentialsFile: filepath.Join(t.TempDir(), "none.json")}})
	if err == nil || !strings.Contains(err.Error(), "metrics.prometheus.google: credentials_file") {
		t.Errorf("a missing file: %v", err)
	}
}

// verifyJWT checks an RS256 JSON Web Token's signature and expiry and
// returns its claims.
func verifyJWT(tok string, pub *rsa.PublicKey) (map[string]any, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT")
	}
	var header struct{ Alg string }
	if b, err := base64.RawURLEncoding.DecodeString(parts[0]); err != nil || json.Unmarshal(b, &header) != nil || header.Alg != "RS256" {
		return nil, errors.New("want an RS256 header")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return nil, errors.New("bad signature")
	}
	var claims map[string]any
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(b, &claims); err != nil {
		return nil, err
	}
	if exp, _ := claims["exp"].(float64); time.Unix(int64(exp), 0).Before(time.Now()) {
		return nil, errors.New("expired assertion")
	}
	return claims, nil
}

func TestTLSClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw)
	srvCert := leaf(t, ca, caKey, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	cliCert := leaf(t, ca, caKey, "deploywatch", x509.ExtKeyUsageClientAuth)
	writePEM(t, filepath.Join(dir, "client.pem"), "CERTIFICATE", cliCert.Certificate[0])
	writePEM(t, filepath.Join(dir, "client-key.pem"), "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(cliCert.PrivateKey)))

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"scalar","result":[%d,"1"]}}`, time.Now().Unix())
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the test
	srv.StartTLS()
	defer srv.Close()

	resolve := func(p string) string { return filepath.Join(dir, p) }
	cases := []struct {
		name string
		tls  *config.TLS
		want string // "" for success
	}{
		{"ca and client certificate", &config.TLS{CAFile: "ca.pem", CertFile: "client.pem", KeyFile: "client-key.pem"}, ""},
		{"no client certificate", &config.TLS{CAFile: "ca.pem"}, "certificate required"},
		{"the system's roots", &config.TLS{CertFile: "client.pem", KeyFile: "client-key.pem"}, "certificate signed by unknown authority"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rt, err := Transport(context.Background(), Options{TLS: c.tls, Resolve: resolve})
			if err != nil {
				t.Fatal(err)
			}
			err = query(t, srv.URL, rt)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
	if _, err := Transport(context.Background(), Options{TLS: &config.TLS{CAFile: "client-key.pem"}, Resolve: resolve}); err == nil ||
		!strings.Contains(err.Error(), "metrics.prometheus.tls: ca_file client-key.pem: no PEM certificate") {
		t.Errorf("a key as the CA: %v", err)
	}
}

func newCA(t *testing.T) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return must(x509.ParseCertificate(der)), key
}

func leaf(t *testing.T, ca *x509.Certificate, caKey *rsa.PrivateKey, name string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature}
	if name == "127.0.0.1" {
		tmpl.IPAddresses = ipLoopback
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

var ipLoopback = []net.IP{net.ParseIP("127.0.0.1")}

// TestGoogleMetadataServer: with no key file, Application Default
// Credentials come from the metadata server, which is how workload
// identity on GKE (and any Google Cloud VM) signs in.
func TestGoogleMetadataServer(t *testing.T) {
	ts := &tokenServer{issued: map[string]time.Time{}, lifetime: time.Hour}
	var asked atomic.Int64
	md := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "missing Metadata-Flavor", http.StatusForbidden)
			return
		}
		w.Header().Set("Metadata-Flavor", "Google")
		switch r.URL.Path {
		case "/computeMetadata/v1/instance/service-accounts/default/token":
			if !strings.Contains(r.URL.Query().Get("scopes"), GoogleScope) {
				http.Error(w, "wrong scopes "+r.URL.Query().Get("scopes"), http.StatusBadRequest)
				return
			}
			asked.Add(1)
			ts.mu.Lock()
			ts.issued["ya29.metadata"] = time.Now().Add(time.Hour)
			ts.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"access_token":"ya29.metadata","expires_in":3599,"token_type":"Bearer"}`)
		default:
			fmt.Fprint(w, "") // the metadata client's probe of the server
		}
	}))
	defer md.Close()
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir()) // no gcloud credentials
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(md.URL, "http://"))
	srv, served := promServer(t, ts.accepts)
	rt, err := Transport(context.Background(), Options{Google: &config.Google{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := query(t, srv.URL, rt); err != nil {
		t.Fatalf("query with the metadata server's token: %v", err)
	}
	if served.Load() != 1 || asked.Load() != 1 {
		t.Errorf("served %d with %d tokens from the metadata server", served.Load(), asked.Load())
	}
}

// TestTokenTroubleDuringAWatch: a token endpoint that stalls when a token
// is renewed cannot hold a query past the token timeout, and one that
// refuses while echoing the request cannot put the secret in the error;
// both are sign-in errors.
func TestTokenTroubleDuringAWatch(t *testing.T) {
	defer func(d time.Duration) { tokenTimeout = d }(tokenTimeout)
	tokenTimeout = 500 * time.Millisecond
	const secret = "renewal-client-secret-77"
	var grants atomic.Int64
	var mode atomic.Value
	mode.Store("ok")
	release := make(chan struct{})
	defer close(release)
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = r.ParseForm()
		switch mode.Load() {
		case "stall":
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		case "echo":
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":"invalid_client","error_description":"you sent %s"}`, r.Form.Encode())
			return
		}
		// Tokens that expire at once: every query renews its token.
		fmt.Fprintf(w, `{"access_token":"t-%d","token_type":"Bearer","expires_in":1}`, grants.Add(1))
	}))
	defer tokens.Close()
	srv, _ := promServer(t, func(*http.Request) error { return nil })
	rt, err := Transport(context.Background(), Options{OAuth2: &config.OAuth2{TokenURL: tokens.URL, ClientID: "c"}, OAuth2ClientSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	mode.Store("stall")
	start := time.Now()
	err = query(t, srv.URL, rt)
	if took := time.Since(start); err == nil || took > 3*time.Second {
		t.Fatalf("a stalled token endpoint: %v after %s, want an error within the token timeout", err, took)
	}
	mode.Store("echo")
	err = query(t, srv.URL, rt)
	if !errors.Is(err, metrics.ErrSignIn) || strings.Contains(err.Error(), secret) {
		t.Fatalf("a refused renewal: %v; want a sign-in error without the secret", err)
	}
}

// TestSigV4RefusedRole: a role STS refuses to let us assume is a sign-in
// error at the first query (which Start asks), not a network failure.
func TestSigV4RefusedRole(t *testing.T) {
	isolateAWS(t)
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole</Message></Error><RequestId>1</RequestId></ErrorResponse>`)
	}))
	defer sts.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDBASE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "base-secret")
	t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)
	srv, served := promServer(t, func(*http.Request) error { return nil })
	rt, err := Transport(context.Background(), Options{SigV4: &config.SigV4{Region: "eu-west-1", RoleARN: "arn:aws:iam::123456789012:role/nope"}})
	if err != nil {
		t.Fatal(err)
	}
	err = query(t, srv.URL, rt)
	if !errors.Is(err, metrics.ErrSignIn) || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("got %v, want a sign-in error naming AccessDenied", err)
	}
	if served.Load() != 0 {
		t.Error("a query went out unsigned")
	}
}
