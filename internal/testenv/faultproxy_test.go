package testenv

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestFaultProxy(t *testing.T) {
	body := strings.Repeat("x", 10_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, body) }))
	defer srv.Close()
	p := StartFaultProxy(t, strings.TrimPrefix(srv.URL, "http://"))
	get := func(timeout time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr, nil)
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := get(5 * time.Second); err != nil || got != body {
		t.Fatalf("no fault: %d bytes, %v", len(got), err)
	}
	p.Set(Fault{Stall: true})
	if _, err := get(300 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stalled: %v, want the client's deadline", err)
	}
	p.Set(Fault{CutAfter: 500})
	if got, err := get(5 * time.Second); err == nil || len(got) >= len(body) {
		t.Errorf("cut: %d bytes, %v; want a broken answer", len(got), err)
	}
	p.Set(Fault{ByteDelay: time.Millisecond})
	start := time.Now()
	if _, err := get(150 * time.Millisecond); err == nil {
		t.Errorf("a 10 kB answer at a byte a millisecond came within 150ms (%s)", time.Since(start))
	}
	p.Set(Fault{})
	if got, err := get(5 * time.Second); err != nil || got != body {
		t.Fatalf("healed: %d bytes, %v", len(got), err)
	}
}
