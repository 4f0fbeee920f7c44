package testenv

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// This file is the server side of AWS Signature Version 4, written from
// AWS's description of the algorithm: it recomputes a request's signature
// from what arrived, as the service does, and accepts the request only when
// it matches. Its test checks it against AWS's published test suite before
// it checks deploywatch's requests.

// AWSKey is one access key a loopback AWS service knows.
type AWSKey struct {
	Secret string
	// Token, when set, is the session token the key must come with.
	Token string
}

// SigV4Verifier checks requests signed for one region and service.
type SigV4Verifier struct {
	Region, Service string
	Keys            map[string]AWSKey
	// Now is the server's clock. Default time.Now.
	Now func() time.Time
}

// Verify returns nil when r carries a valid signature, else the error AWS
// would name (SignatureDoesNotMatch, ExpiredToken, ...). It reads and
// restores r's body.
func (v *SigV4Verifier) Verify(r *http.Request) error {
	auth := r.Header.Get("Authorization")
	alg, rest, ok := strings.Cut(auth, " ")
	if !ok || alg != "AWS4-HMAC-SHA256" {
		return fmt.Errorf("Authorization %q is not AWS4-HMAC-SHA256", alg)
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = val
	}
	cred := strings.Split(fields["Credential"], "/")
	if len(cred) != 5 || cred[4] != "aws4_request" {
		return fmt.Errorf("credential %q: want KEY/DATE/REGION/SERVICE/aws4_request", fields["Credential"])
	}
	key, ok := v.Keys[cred[0]]
	if !ok {
		return fmt.Errorf("InvalidClientTokenId: unknown access key %s", cred[0])
	}
	if cred[2] != v.Region || cred[3] != v.Service {
		return fmt.Errorf("credential scope %s/%s: want %s/%s", cred[2], cred[3], v.Region, v.Service)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	at, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return fmt.Errorf("X-Amz-Date %q: %v", amzDate, err)
	}
	if cred[1] != amzDate[:8] {
		return fmt.Errorf("credential date %s is not the request's %s", cred[1], amzDate[:8])
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if skew := now().Sub(at); skew > 15*time.Minute || skew < -15*time.Minute {
		return fmt.Errorf("RequestTimeTooSkewed: signed at %s", at)
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	if !slices.Contains(signed, "host") || !slices.Contains(signed, "x-amz-date") {
		return fmt.Errorf("SignedHeaders %q must include host and x-amz-date", fields["SignedHeaders"])
	}
	if key.Token != "" {
		if r.Header.Get("X-Amz-Security-Token") != key.Token {
			return fmt.Errorf("ExpiredToken: the session token is not the key's")
		}
		if !slices.Contains(signed, "x-amz-security-token") {
			return fmt.Errorf("the session token is not signed")
		}
	}
	var body []byte
	if r.Body != nil {
		if body, err = io.ReadAll(r.Body); err != nil {
			return err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	want := SigV4Signature(key.Secret, cred[1], v.Region, v.Service, amzDate, CanonicalRequest(r, signed, body))
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return fmt.Errorf("SignatureDoesNotMatch")
	}
	return nil
}

// CanonicalRequest is the request in the form that is signed, with the
// headers named in signed and the body.
func CanonicalRequest(r *http.Request, signed []string, body []byte) string {
	var b strings.Builder
	b.WriteString(r.Method + "\n")
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	b.WriteString(awsEscape(path, false) + "\n") // services other than S3 encode the path once more
	b.WriteString(canonicalQuery(r.URL.Query()) + "\n")
	for _, h := range signed {
		val := strings.Join(r.Header.Values(h), ",")
		if h == "host" {
			val = r.Host
		}
		b.WriteString(h + ":" + strings.Join(strings.Fields(val), " ") + "\n")
	}
	b.WriteString("\n" + strings.Join(signed, ";") + "\n")
	sum := sha256.Sum256(body)
	b.WriteString(hex.EncodeToString(sum[:]))
	return b.String()
}

func canonicalQuery(q url.Values) string {
	var pairs []string
	for k, vals := range q {
		for _, val := range vals {
			pairs = append(pairs, awsEscape(k, true)+"="+awsEscape(val, true))
		}
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "&")
}

// awsEscape percent-encodes every byte but the unreserved ones (and '/'
// unless slash is set).
func awsEscape(s string, slash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		unreserved := 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~", c) >= 0
		if unreserved || c == '/' && !slash {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// SigV4Signature signs a canonical request.
func SigV4Signature(secret, date, region, service, amzDate, canonical string) string {
	scope := date + "/" + region + "/" + service + "/aws4_request"
	sum := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, "aws4_request")
	return hex.EncodeToString(hmacSHA256(k, toSign))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
