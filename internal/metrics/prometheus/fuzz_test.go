package prometheus

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/testenv"
)

// FuzzAnswer: whatever a server answers (status and body: huge numbers,
// "NaN" and "+Inf", wrong result types, deep nesting, truncation), the
// client returns a vector or an error, never a panic or a hang. Seeds:
// testdata/fuzz/FuzzAnswer.
func FuzzAnswer(f *testing.F) {
	type answer struct {
		status int
		body   []byte
	}
	var current atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := current.Load().(answer)
		w.WriteHeader(a.status)
		_, _ = w.Write(a.body)
	}))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL, Timeout: 5 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, status uint16, body []byte, matrix bool) {
		code := 200 + int(status)%400 // 200..599, mostly the meaningful ones
		current.Store(answer{code, body})
		testenv.Within(t, 10*time.Second, func() {
			if matrix {
				m, err := c.QueryRange(context.Background(), "up", time.Unix(0, 0), time.Unix(60, 0), time.Second)
				if err == nil && m == nil {
					err = errors.New("no matrix and no error")
				}
				_ = err
				return
			}
			v, err := c.Query(context.Background(), "up", time.Unix(60, 0))
			if err == nil {
				for _, s := range v {
					_ = math.IsNaN(s.Value) // NaN and ±Inf are values: the judge decides
				}
			}
		})
	})
}
