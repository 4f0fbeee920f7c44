package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/notify/notifytest"
)

func TestSignedJSON(t *testing.T) {
	var body []byte
	var sig string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		sig = r.Header.Get(SignatureHeader)
	}))
	defer srv.Close()
	if err := New(srv.URL+"/deploys", "whsec", nil, nil).Send(context.Background(), notifytest.Message(event.Verdict)); err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, []byte("whsec"))
	mac.Write(body)
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); sig != want {
		t.Fatalf("signature %q, want %q for the exact body", sig, want)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m["event"] != "verdict" || m["verdict"] != "failed" || m["check"] == nil {
		t.Fatalf("body %s", body)
	}
	if strings.Contains(string(body), "whsec") {
		t.Fatal("the secret is in the body")
	}
}

func TestNoSecretNoSignature(t *testing.T) {
	got := "unset"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Get(SignatureHeader) }))
	defer srv.Close()
	if err := New(srv.URL, "", nil, nil).Send(context.Background(), notifytest.Message(event.Started)); err != nil || got != "" {
		t.Fatalf("err %v, signature %q", err, got)
	}
}
