package web

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/metrics"
)

func TestQueryReadsTheAnswerWithJq(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer web-token" || r.Header.Get("X-Org") != "7" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Query().Get("time") == "" {
			http.Error(w, "no time", http.StatusBadRequest)
			return
		}
		switch q := r.URL.Query().Get("query"); q {
		case "errors":
			fmt.Fprint(w, `{"data": {"result": [{"value": 0.0125, "count": 4000}]}}`)
		case "big":
			fmt.Fprint(w, `{"data": {"result": [{"value": 123456789012345678901234567890, "count": 1}]}}`)
		case "nan":
			fmt.Fprint(w, `{"data": {"result": [{"value": "NaN", "count": 1}]}}`)
		case "none":
			fmt.Fprint(w, `{"data": {"result": []}}`)
		case "text":
			fmt.Fprint(w, `{"data": {"result": [{"value": "fine"}]}}`)
		default:
			http.Error(w, "unknown query "+q, http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	s, err := New(Config{URL: srv.URL + "/v1/value?org=7", Headers: map[string]string{"X-Org": "7"}, BearerToken: "web-token",
		Value: ".data.result[0].value", Samples: ".data.result[0].count"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		query   string
		value   float64
		samples float64
		empty   bool
		err     error
		errHas  string
	}{
		{query: "errors", value: 0.0125, samples: 4000},
		{query: "big", value: 1.2345678901234568e29, samples: 1},
		{query: "nan", value: math.NaN(), samples: 1},
		{query: "none", empty: true},
		{query: "text", errHas: `gives "fine", want a number`},
		{query: "other", err: metrics.ErrBadQuery, errHas: "unknown query other"},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			vec, err := s.Query(context.Background(), c.query, time.Now())
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) || c.err != nil && !errors.Is(err, c.err) {
					t.Fatalf("got %v, want %q", err, c.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.empty {
				if len(vec) != 0 {
					t.Fatalf("got %v, want no data", vec)
				}
				return
			}
			if len(vec) != 1 || !(vec[0].Value == c.value || math.IsNaN(c.value) && math.IsNaN(vec[0].Value)) || vec[0].Count != c.samples {
				t.Fatalf("got %+v, want %g of %g", vec, c.value, c.samples)
			}
		})
	}
	bad, _ := New(Config{URL: srv.URL, BearerToken: "wrong", Value: ".x"})
	if _, err := bad.Query(context.Background(), "errors", time.Now()); !errors.Is(err, metrics.ErrSignIn) || strings.Contains(err.Error(), "wrong") {
		t.Errorf("a wrong token: %v", err)
	}
	if _, err := New(Config{URL: srv.URL, Value: ".data["}); err == nil {
		t.Error("a broken jq expression was accepted")
	}
}

func TestHostileAnswers(t *testing.T) {
	cases := map[string]http.HandlerFunc{
		"not JSON":  func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>") },
		"too big":   func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `"`+strings.Repeat("x", maxBody+10)+`"`) },
		"a 500":     func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusInternalServerError) },
		"too slow":  func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
		"an object": func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"v": {"a": 1}}`) },
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			s, err := New(Config{URL: srv.URL, Value: ".v", Timeout: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Query(context.Background(), "q", time.Now()); err == nil {
				t.Fatal("no error")
			}
		})
	}
}
