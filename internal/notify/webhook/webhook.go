// Package webhook posts every message as JSON to a URL, signed with
// HMAC-SHA256 when a secret is set so that receivers can verify it.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/notify"
)

// SignatureHeader carries "sha256=<hex of HMAC-SHA256(secret, body)>".
const SignatureHeader = "X-Deploywatch-Signature"

// Webhook is one endpoint.
type Webhook struct {
	url, secret string
	filter      notify.Filter
	client      *http.Client
}

var _ notify.Sink = (*Webhook)(nil)

// New returns a sink that posts every kind of message by default.
func New(url, secret string, events []string, client *http.Client) *Webhook {
	return &Webhook{url: url, secret: secret, client: client, filter: notify.NewFilter(events, event.Deliverable...)}
}

// Name is "webhook".
func (w *Webhook) Name() string { return "webhook" }

// Wants applies the event filter.
func (w *Webhook) Wants(k event.Kind) bool { return w.filter.Wants(k) }

// Send posts the message as JSON.
func (w *Webhook) Send(ctx context.Context, m notify.Message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	headers := map[string]string{"X-Deploywatch-Event": string(m.Kind)}
	if w.secret != "" {
		headers[SignatureHeader] = Sign(w.secret, body)
	}
	_, err = notify.Do(ctx, w.client, notify.Request{Method: http.MethodPost, URL: w.url, Body: body, Headers: headers, Secrets: []string{w.secret}})
	return err
}

// Sign returns the signature header's value for body.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
