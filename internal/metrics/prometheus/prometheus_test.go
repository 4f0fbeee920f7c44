package prometheus

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/metrics"
)

func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func TestQueryDecodesValues(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		want    []float64
		wantErr string
	}{
		{name: "empty result is no data", body: `{"status":"success","data":{"resultType":"vector","result":[]}}`, want: []float64{}},
		{name: "values are strings, NaN and infinities included",
			body: `{"status":"success","data":{"resultType":"vector","result":[
				{"metric":{"a":"1"},"value":[1700000000.5,"0.25"]},
				{"metric":{"a":"2"},"value":[1700000000.5,"NaN"]},
				{"metric":{"a":"3"},"value":[1700000000.5,"+Inf"]},
				{"metric":{"a":"4"},"value":[1700000000.5,"-Inf"]}]}}`,
			want: []float64{0.25, math.NaN(), math.Inf(1), math.Inf(-1)}},
		{name: "a scalar is one unlabelled sample", body: `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}`, want: []float64{3}},
		{name: "a matrix is not an instant answer", body: `{"status":"success","data":{"resultType":"matrix","result":[]}}`, wantErr: "want an instant vector"},
		{name: "a number where a string belongs", body: `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,0.5]}]}}`, wantErr: "is not a string"},
		{name: "garbage is not the API", body: `<html>proxy error</html>`, wantErr: "not the Prometheus API"},
		{name: "status error", body: `{"status":"error","errorType":"execution","error":"boom"}`, wantErr: "boom"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := serve(t, answer(200, c.body))
			cl, err := New(Config{URL: s.URL})
			if err != nil {
				t.Fatal(err)
			}
			v, err := cl.Query(context.Background(), "up", time.Unix(1700000000, 0))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(v) != len(c.want) {
				t.Fatalf("got %d samples, want %d", len(v), len(c.want))
			}
			for i, w := range c.want {
				g := v[i].Value
				if !(g == w || math.IsNaN(g) && math.IsNaN(w)) {
					t.Errorf("sample %d = %g, want %g", i, g, w)
				}
			}
		})
	}
}

func TestQuerySendsFormAuthAndHeaders(t *testing.T) {
	var got *http.Request
	var form string
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got = r
		_ = r.ParseForm()
		form = r.PostForm.Encode()
		answer(200, `{"status":"success","data":{"resultType":"vector","result":[]}}`)(w, r)
	})
	cl, _ := New(Config{URL: s.URL + "/prom/", BearerToken: "s3cret", Headers: map[string]string{"X-Scope-OrgID": "team"}, Timeout: 7 * time.Second})
	if _, err := cl.Query(context.Background(), `sum(rate(x{job="api"}[1m]))`, time.Unix(1700000000, 250e6)); err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPost || got.URL.Path != "/prom/api/v1/query" {
		t.Errorf("request %s %s, want POST /prom/api/v1/query", got.Method, got.URL.Path)
	}
	if got.Header.Get("Authorization") != "Bearer s3cret" || got.Header.Get("X-Scope-OrgID") != "team" {
		t.Errorf("headers %v", got.Header)
	}
	for _, want := range []string{"time=1700000000.250", "timeout=7s", "query=sum%28rate"} {
		if !strings.Contains(form, want) {
			t.Errorf("form %q lacks %q", form, want)
		}
	}
}

func TestBadQueryIsNotRetried(t *testing.T) {
	var calls atomic.Int32
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		answer(400, `{"status":"error","errorType":"bad_data","error":"parse error at char 5"}`)(w, r)
	})
	cl, _ := New(Config{URL: s.URL, Retries: 3, Backoff: time.Millisecond})
	_, err := cl.Query(context.Background(), "up{", time.Now())
	if !errors.Is(err, metrics.ErrBadQuery) || !strings.Contains(err.Error(), "parse error") {
		t.Fatalf("err = %v, want ErrBadQuery with the server's message", err)
	}
	if calls.Load() != 1 {
		t.Errorf("a bad query was sent %d times, want once", calls.Load())
	}
}

func TestUnavailableIsRetriedWithBackoff(t *testing.T) {
	var calls atomic.Int32
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			answer(503, `{"status":"error","errorType":"timeout","error":"query timed out"}`)(w, r)
			return
		}
		answer(200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}`)(w, r)
	})
	cl, _ := New(Config{URL: s.URL, Retries: 2, Backoff: time.Millisecond})
	v, err := cl.Query(context.Background(), "up", time.Now())
	if err != nil || len(v) != 1 || calls.Load() != 3 {
		t.Fatalf("v=%v err=%v calls=%d, want success on the third call", v, err, calls.Load())
	}
	cl, _ = New(Config{URL: s.URL, Retries: 0})
	calls.Store(0)
	if _, err := cl.Query(context.Background(), "up", time.Now()); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("err = %v, want the 503 without retries", err)
	}
}

func TestErrorsNeverCarryCredentials(t *testing.T) {
	// Nothing listens on port 1.
	cl, err := New(Config{URL: "http://admin:hunter2@127.0.0.1:1", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Query(context.Background(), "up", time.Now())
	if err == nil {
		t.Fatal("want a connection error")
	}
	for _, secret := range []string{"hunter2", "admin"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q leaks %q", err, secret)
		}
	}
}

func TestSlowServerTimesOut(t *testing.T) {
	release := make(chan struct{})
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	cl, _ := New(Config{URL: s.URL, Timeout: 50 * time.Millisecond})
	_, err := cl.Query(context.Background(), "up", time.Now())
	if err == nil || !strings.Contains(err.Error(), "longer than 50ms") {
		t.Fatalf("err = %v, want the timeout named", err)
	}
}

func TestHugeAnswerIsRefused(t *testing.T) {
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := strings.Repeat("x", 1<<20)
		for range 40 {
			if _, err := w.Write([]byte(chunk)); err != nil {
				return
			}
		}
	})
	cl, _ := New(Config{URL: s.URL})
	if _, err := cl.Query(context.Background(), "up", time.Now()); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("err = %v, want the size limit", err)
	}
}

func TestQueryRange(t *testing.T) {
	s := serve(t, answer(200, `{"status":"success","data":{"resultType":"matrix","result":[
		{"metric":{"job":"api"},"values":[[100,"1"],[101,"2"]]}]}}`))
	cl, _ := New(Config{URL: s.URL})
	m, err := cl.QueryRange(context.Background(), "up", time.Unix(100, 0), time.Unix(101, 0), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || len(m[0].Points) != 2 || m[0].Points[1].Value != 2 || !m[0].Points[0].Time.Equal(time.Unix(100, 0)) {
		t.Fatalf("got %+v", m)
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "localhost:9090", "ftp://x", "http://"} {
		if _, err := New(Config{URL: u}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}
