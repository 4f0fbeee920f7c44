package datadog

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/golden"
	"github.com/deploywatch/deploywatch/internal/notify"
	"github.com/deploywatch/deploywatch/internal/notify/notifytest"
)

// fakeDatadog checks POST /api/v1/events as documented: DD-API-KEY, title
// ≤ 100, text ≤ 4000, date_happened in epoch seconds no older than 18 h,
// alert_type and priority from their sets, aggregation_key ≤ 100; 202.
func fakeDatadog(t *testing.T, got *[]Event) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/events" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("DD-API-KEY") != "dd-key" {
			http.Error(w, `{"errors":["Forbidden"]}`, 403)
			return
		}
		var e Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			http.Error(w, `{"errors":["bad json"]}`, 400)
			return
		}
		alerts := map[string]bool{"error": true, "warning": true, "info": true, "success": true, "user_update": true, "recommendation": true, "snapshot": true}
		age := time.Since(time.Unix(e.DateHappened, 0))
		if e.Title == "" || len([]rune(e.Title)) > 100 || len([]rune(e.Text)) > 4000 || !alerts[e.AlertType] ||
			(e.Priority != "normal" && e.Priority != "low") || len(e.AggregationKey) > 100 || e.DateHappened > 1e11 || age > 18*time.Hour {
			http.Error(w, `{"errors":["invalid event"]}`, 400)
			return
		}
		*got = append(*got, e)
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"status":"ok"}`))
	}))
	t.Cleanup(s.Close)
	return s
}

func now(m notify.Message) notify.Message {
	shift := time.Since(m.StartedAt) - time.Minute
	m.StartedAt, m.At = m.StartedAt.Add(shift), m.At.Add(shift)
	return m
}

func TestEvents(t *testing.T) {
	var got []Event
	srv := fakeDatadog(t, &got)
	d := New(srv.URL, "dd-key", nil, nil)
	long := now(notifytest.Message(event.Verdict))
	long.Reason = strings.Repeat("x", 5000)
	for _, m := range []notify.Message{now(notifytest.Message(event.Started)), now(notifytest.Message(event.Verdict)), long} {
		if err := d.Send(context.Background(), m); err != nil {
			t.Fatalf("%s: %v", m.Kind, err)
		}
	}
	if got[0].AlertType != "info" || got[1].AlertType != "error" || got[0].AggregationKey != got[1].AggregationKey {
		t.Errorf("alert types %s %s, keys %q %q", got[0].AlertType, got[1].AlertType, got[0].AggregationKey, got[1].AggregationKey)
	}
	for _, tag := range []string{"env:staging", "service:api", "version:v2"} {
		if !strings.Contains(strings.Join(got[1].Tags, ","), tag) {
			t.Errorf("tags %v lack %s", got[1].Tags, tag)
		}
	}
	if !strings.HasPrefix(got[1].Text, "%%% \n") || !strings.HasSuffix(got[1].Text, "\n %%%") {
		t.Errorf("text is not a Markdown block: %q", got[1].Text)
	}
	golden.Check(t, "datadog-verdict.golden.json", Build(notifytest.Message(event.Verdict)))
}

func TestKeyNeverInErrors(t *testing.T) {
	var got []Event
	srv := fakeDatadog(t, &got)
	err := New(srv.URL, "wrong-dd-key", nil, nil).Send(context.Background(), now(notifytest.Message(event.Started)))
	if err == nil || !strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), "wrong-dd-key") {
		t.Fatalf("err = %v", err)
	}
}
