package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/store/sqlite"
	"github.com/deploywatch/deploywatch/internal/testenv"
)

// FuzzAPIRequest: any body, content type, id and query sent to the API's
// endpoints (with a token that may use them) gets an answer below 500,
// in JSON, and never crashes the server. Seeds: testdata/fuzz/FuzzAPIRequest.
func FuzzAPIRequest(f *testing.F) {
	st, err := sqlite.Open(context.Background(), filepath.Join(f.TempDir(), "deploywatch.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	hs := apiServer(f, st, false)
	// One deploy to send events and labels to.
	create := `{"key":"fuzz-1","deploy":{"service":"api","version":"v2","started_at":"2026-11-25T12:00:00Z"}}`
	req, _ := http.NewRequest(http.MethodPost, hs.URL+"/api/v1/deploys", bytes.NewBufferString(create))
	req.Header.Set("Authorization", "Bearer "+tokens["DW_TEST_INGEST"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.Fatal(err)
	}
	var created struct {
		ID string `json:"id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if created.ID == "" {
		f.Fatalf("creating the deploy answered %d", resp.StatusCode)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	f.Fuzz(func(t *testing.T, endpoint uint8, id string, query string, contentType string, body []byte) {
		if id == "" {
			id = created.ID
		}
		method, path, token := http.MethodPost, "", tokens["DW_TEST_INGEST"]
		switch endpoint % 6 {
		case 0:
			path = "/api/v1/deploys"
		case 1:
			path = "/api/v1/deploys/" + url.PathEscape(id) + "/events"
		case 2:
			path, token = "/api/v1/deploys/"+url.PathEscape(id)+"/label", tokens["DW_TEST_LABEL"]
		case 3:
			method, path = http.MethodGet, "/api/v1/deploys"
		case 4:
			method, path = http.MethodGet, "/api/v1/deploys/"+url.PathEscape(id)
		case 5:
			method, path = http.MethodGet, "/api/v1/services/"+url.PathEscape(id)+"/dora"
		}
		u := hs.URL + path + "?" + url.Values{"q": {query}}.Encode()
		if endpoint >= 128 {
			if strings.ContainsFunc(query, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '#' }) {
				return // not a request line: net/http refuses it before the API sees it
			}
			u = hs.URL + path + "?" + query // a raw query string, as sent
		}
		req, err := http.NewRequest(method, u, bytes.NewReader(body))
		if err != nil {
			return // not a request a client can send
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if contentType != "" {
			if strings.ContainsFunc(contentType, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
				return // not a header a client can send
			}
			req.Header.Set("Content-Type", contentType)
		}
		var status int
		var answer []byte
		var sendErr error
		testenv.Within(t, 15*time.Second, func() {
			resp, err := client.Do(req)
			if err != nil {
				sendErr = err
				return
			}
			defer resp.Body.Close()
			status = resp.StatusCode
			answer, sendErr = io.ReadAll(resp.Body)
		})
		if sendErr != nil {
			t.Fatalf("%s %s: %v (did the handler crash?)", method, u, sendErr)
		}
		if status >= 500 {
			t.Fatalf("%s %s answered %d: %s", method, u, status, answer)
		}
		if status != http.StatusNoContent && !json.Valid(answer) {
			t.Fatalf("%s %s answered %d with something that is not JSON: %q", method, u, status, answer)
		}
	})
}
