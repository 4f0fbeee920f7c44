package slack

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/golden"
	"github.com/deploywatch/deploywatch/internal/notify"
	"github.com/deploywatch/deploywatch/internal/notify/notifytest"
)

// fakeSlack checks each request against the incoming-webhook and Block Kit
// rules: JSON, a text fallback, at most 50 blocks, header ≤ 150, section
// text ≤ 3000, ≤ 10 fields of ≤ 2000; it answers 200 "ok".
func fakeSlack(t *testing.T, got *[]map[string]any) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p struct {
			Text   string `json:"text"`
			Blocks []struct {
				Type   string `json:"type"`
				Text   *struct{ Type, Text string }
				Fields []struct{ Type, Text string }
			} `json:"blocks"`
		}
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &p) != nil {
			http.Error(w, "invalid_payload", 400)
			return
		}
		if p.Text == "" || len(p.Blocks) == 0 || len(p.Blocks) > 50 {
			http.Error(w, "invalid_blocks", 400)
			return
		}
		for _, b := range p.Blocks {
			switch {
			case b.Type == "header" && (b.Text == nil || b.Text.Type != "plain_text" || len([]rune(b.Text.Text)) > 150),
				b.Type == "section" && b.Text != nil && len([]rune(b.Text.Text)) > 3000,
				len(b.Fields) > 10:
				http.Error(w, "invalid_blocks", 400)
				return
			}
			for _, f := range b.Fields {
				if len([]rune(f.Text)) > 2000 {
					http.Error(w, "invalid_blocks", 400)
					return
				}
			}
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		*got = append(*got, m)
		w.Write([]byte("ok"))
	}))
	t.Cleanup(s.Close)
	return s
}

func TestPayloads(t *testing.T) {
	for _, k := range []event.Kind{event.Started, event.Verdict, event.RollbackStarted} {
		t.Run(string(k), func(t *testing.T) {
			golden.Check(t, "slack-"+string(k)+".golden.json", Payload(notifytest.Message(k)))
		})
	}
}

func TestSendsValidBlockKit(t *testing.T) {
	var got []map[string]any
	srv := fakeSlack(t, &got)
	s := New(srv.URL+"/services/T000/B000/XXXX", nil, nil)
	huge := notifytest.Message(event.Verdict)
	huge.Reason = strings.Repeat("very long reason ", 400)
	huge.Version = strings.Repeat("v", 300)
	for _, m := range []notify.Message{notifytest.Message(event.Started), notifytest.Message(event.Verdict), huge} {
		if err := s.Send(context.Background(), m); err != nil {
			t.Fatalf("%s: %v", m.Kind, err)
		}
	}
	if len(got) != 3 {
		t.Fatalf("%d messages accepted", len(got))
	}
	if !s.Wants(event.Started) || !s.Wants(event.Verdict) || !s.Wants(event.RollbackDone) || s.Wants(event.Breached) {
		t.Error("default events: start, verdict and rollback")
	}
}

func TestErrorsNeverShowTheWebhookURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "channel_not_found", http.StatusNotFound)
	}))
	defer srv.Close()
	secret := srv.URL + "/services/T000/B000/s3cr3tp4th"
	err := New(secret, nil, nil).Send(context.Background(), notifytest.Message(event.Started))
	if err == nil || !strings.Contains(err.Error(), "channel_not_found") || strings.Contains(err.Error(), "s3cr3tp4th") {
		t.Fatalf("err = %v", err)
	}
	err = New("http://127.0.0.1:1/services/s3cr3tp4th", nil, nil).Send(context.Background(), notifytest.Message(event.Started))
	if err == nil || strings.Contains(err.Error(), "s3cr3tp4th") {
		t.Fatalf("transport error leaks the URL: %v", err)
	}
}
