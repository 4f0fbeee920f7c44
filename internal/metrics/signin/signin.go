// Package signin turns a metric source's sign-in settings into an HTTP
// transport: AWS Signature Version 4 (Amazon Managed Service for
// Prometheus), Google's Application Default Credentials (Google Cloud
// Managed Service for Prometheus), the OAuth2 client-credentials grant,
// and TLS with a private certificate authority or a client certificate.
//
// Each sign-in fetches its first credentials when the transport is built,
// so that missing, wrong or expired ones fail at a watch's Start, before
// anything is deployed, rather than at its first look.
package signin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/smithy-go"
	"github.com/prometheus/sigv4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/google"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/metrics"
	"github.com/deploywatch/deploywatch/internal/textutil"
)

// GoogleScope is the scope Google Cloud Managed Service for Prometheus
// queries need.
const GoogleScope = "https://www.googleapis.com/auth/monitoring.read"

// Options say how to sign in. At most one of SigV4, Google and OAuth2 is
// set; TLS combines with any.
type Options struct {
	SigV4  *config.SigV4
	Google *config.Google
	OAuth2 *config.OAuth2
	// OAuth2ClientSecret is the client secret, read from where the config
	// says.
	OAuth2ClientSecret string
	TLS                *config.TLS
	// Resolve makes the config's file paths usable (relative to the config
	// file). Default: the paths as written.
	Resolve func(string) string
}

// field is the config block errors name.
const field = "metrics.prometheus"

// Transport builds the transport o describes on top of http's default one,
// and fetches the first credentials. The context bounds that fetch only.
func Transport(ctx context.Context, o Options) (http.RoundTripper, error) {
	if o.Resolve == nil {
		o.Resolve = func(p string) string { return p }
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	if o.TLS != nil {
		tc, err := tlsConfig(o.TLS, o.Resolve)
		if err != nil {
			return nil, fmt.Errorf("%s.tls: %w", field, err)
		}
		base.TLSClientConfig = tc
	}
	// Token requests go through the same transport (a private CA signs
	// the token endpoint as often as the server), each bounded: a refresh
	// runs inside a query, without the query's context, and a token
	// endpoint that stalls must not hold the watch.
	tokenCtx := context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, &http.Client{Transport: base, Timeout: tokenTimeout})
	switch {
	case o.SigV4 != nil:
		rt, err := sigv4.NewSigV4RoundTripper(&sigv4.SigV4Config{
			Region: o.SigV4.Region, RoleARN: o.SigV4.RoleARN, Profile: o.SigV4.Profile, ServiceName: o.SigV4.Service,
		}, base, sigv4.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("%s.sigv4: %w", field, err)
		}
		return &credentialErrors{next: rt, field: field + ".sigv4"}, nil
	case o.Google != nil:
		ts, err := googleTokens(ctx, tokenCtx, o.Google, o.Resolve)
		if err != nil {
			return nil, fmt.Errorf("%s.google: %w", field, err)
		}
		return withTokens(ctx, ts, base, field+".google")
	case o.OAuth2 != nil:
		cc := &clientcredentials.Config{
			ClientID: o.OAuth2.ClientID, ClientSecret: o.OAuth2ClientSecret,
			TokenURL: o.OAuth2.TokenURL, Scopes: o.OAuth2.Scopes,
		}
		if len(o.OAuth2.EndpointParams) > 0 {
			cc.EndpointParams = map[string][]string{}
			for k, v := range o.OAuth2.EndpointParams {
				cc.EndpointParams[k] = []string{v}
			}
		}
		return withTokens(ctx, cc.TokenSource(tokenCtx), base, field+".oauth2", o.OAuth2ClientSecret)
	}
	return base, nil
}

// withTokens fetches the first token (bounded by ctx) and returns a
// transport that sends it, refreshed before it expires.
func withTokens(ctx context.Context, ts oauth2.TokenSource, base http.RoundTripper, block string, secrets ...string) (http.RoundTripper, error) {
	ts = oauth2.ReuseTokenSource(nil, ts)
	type result struct {
		tok *oauth2.Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := ts.Token()
		done <- result{tok, err}
	}()
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: getting a token: %w", block, context.Cause(ctx))
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("%s: getting a token: %w", block, tokenError(r.err, secrets...))
		}
		if r.tok.AccessToken == "" {
			return nil, fmt.Errorf("%s: the token endpoint gave an empty token", block)
		}
	}
	return &scrubbing{next: &oauth2.Transport{Source: ts, Base: base}, field: block, secrets: secrets}, nil
}

// tokenTimeout bounds one request to a token endpoint.
var tokenTimeout = 10 * time.Second

// scrubbing marks a failed token refresh during a watch as a sign-in
// error, and keeps the secrets out of it: the oauth2 library quotes the
// token endpoint's whole answer, which may echo the client secret.
type scrubbing struct {
	next    http.RoundTripper
	field   string
	secrets []string
}

func (s *scrubbing) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(r)
	if err == nil {
		return resp, nil
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return nil, fmt.Errorf("%w: %s: renewing the token: %w", metrics.ErrSignIn, s.field, tokenError(re, s.secrets...))
	}
	if msg := textutil.Redact(err.Error(), s.secrets...); msg != err.Error() {
		return nil, errors.New(msg)
	}
	return nil, err
}

// credentialErrors marks a failure to get AWS credentials (a refused
// AssumeRole or web identity, an expired SSO session) as a sign-in error:
// the SigV4 library assumes the role at the first request, not when it is
// built, and its error would otherwise read as a network failure. Such a
// failure is an AWS API operation's (STS, SSO), which the request to the
// workspace itself never is.
type credentialErrors struct {
	next  http.RoundTripper
	field string
}

func (c *credentialErrors) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	var op *smithy.OperationError
	if errors.As(err, &op) {
		return nil, fmt.Errorf("%w: %s: getting AWS credentials: %w", metrics.ErrSignIn, c.field, err)
	}
	return resp, err
}

// tokenError keeps what a token endpoint said about a refusal (error,
// description), not the whole body it answered with.
func tokenError(err error, secrets ...string) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		msg := re.ErrorCode
		if re.ErrorDescription != "" {
			msg += ": " + re.ErrorDescription
		}
		switch {
		case msg != "":
			msg = textutil.Redact(msg, secrets...)
		case strings.TrimSpace(string(re.Body)) == "":
			msg = "no reason given"
		default:
			msg = textutil.Excerpt([]byte(textutil.Redact(string(re.Body), secrets...)), 200)
		}
		return fmt.Errorf("the token endpoint answered HTTP %d: %s", re.Response.StatusCode, msg)
	}
	if msg := textutil.Redact(err.Error(), secrets...); msg != err.Error() {
		return errors.New(msg)
	}
	return err
}

func googleTokens(ctx, tokenCtx context.Context, g *config.Google, resolve func(string) string) (oauth2.TokenSource, error) {
	scopes := g.Scopes
	if len(scopes) == 0 {
		scopes = []string{GoogleScope}
	}
	if g.CredentialsFile != "" {
		data, err := os.ReadFile(resolve(g.CredentialsFile))
		if err != nil {
			return nil, fmt.Errorf("credentials_file: %w", err)
		}
		kind := credentialsType(data)
		switch kind {
		case google.ServiceAccount, google.ExternalAccount, google.AuthorizedUser, google.ImpersonatedServiceAccount:
		default:
			return nil, fmt.Errorf("credentials_file: type %q: want service_account, external_account, authorized_user or impersonated_service_account", kind)
		}
		creds, err := google.CredentialsFromJSONWithType(tokenCtx, data, kind, scopes...)
		if err != nil {
			return nil, fmt.Errorf("credentials_file: %w", err)
		}
		return creds.TokenSource, nil
	}
	creds, err := google.FindDefaultCredentials(tokenCtx, scopes...)
	if err != nil {
		return nil, fmt.Errorf("no Application Default Credentials: %w", err)
	}
	return creds.TokenSource, nil
}

// credentialsType reads the "type" of a Google credentials file: only the
// kinds a server-side tool should accept are loaded.
func credentialsType(data []byte) google.CredentialsType {
	var f struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(data, &f)
	return google.CredentialsType(f.Type)
}

func tlsConfig(t *config.TLS, resolve func(string) string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // the user's explicit choice, validated
	if t.CAFile != "" {
		pem, err := os.ReadFile(resolve(t.CAFile))
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(resolve(t.CertFile), resolve(t.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("cert_file and key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
