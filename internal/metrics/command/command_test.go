package command

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/metrics"
)

func TestParseValue(t *testing.T) {
	cases := []struct {
		out       string
		value, n  float64
		ok        bool
		errSubstr string
	}{
		{out: "0.012\n", value: 0.012, ok: true},
		{out: "  42 ", value: 42, ok: true},
		{out: "NaN", value: math.NaN(), ok: true},
		{out: "+Inf", value: math.Inf(1), ok: true},
		{out: `{"value": 0.5, "samples": 1200}`, value: 0.5, n: 1200, ok: true},
		{out: `{"value": "NaN"}`, value: math.NaN(), ok: true},
		{out: "", ok: false},
		{out: "null", ok: false},
		{out: `{"value": null, "samples": 3}`, ok: false},
		{out: "ok", errSubstr: `the output "ok" is not a number`},
		{out: `{"value": "high"}`, errSubstr: `"\"high\"" is not a number`},
		{out: `{"value": 1, "samples": -4}`, errSubstr: "samples -4: want a count"},
		{out: `{"value": 1`, errSubstr: "not JSON"},
		{out: `{"value": [1, 2]}`, errSubstr: "is not a number"},
	}
	for _, c := range cases {
		t.Run(c.out, func(t *testing.T) {
			v, n, ok, err := ParseValue([]byte(c.out))
			if c.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), c.errSubstr) {
					t.Fatalf("got %v, want an error saying %q", err, c.errSubstr)
				}
				return
			}
			if err != nil || ok != c.ok {
				t.Fatalf("got ok=%v err=%v", ok, err)
			}
			if ok && !(v == c.value || math.IsNaN(v) && math.IsNaN(c.value)) || n != c.n {
				t.Errorf("got %g (%g samples), want %g (%g)", v, n, c.value, c.n)
			}
		})
	}
}

func TestQueryRunsTheCommandWithTheQueryAsData(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "value.sh")
	// Prints its argument's length and where it ran: the query reaches
	// it whole, as one argument, whatever it holds.
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = \"$DEPLOYWATCH_QUERY\" ] || exit 9\n[ -n \"$DEPLOYWATCH_TIME\" ] || exit 8\nprintf '{\"value\": %d, \"samples\": 10}' \"${#1}\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Run: "./value.sh", Dir: dir, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "injected")
	for _, q := range []string{`errors{service="api"}`, "v1; touch " + marker, "$(touch " + marker + ")", "`touch " + marker + "`", "' \" \\"} {
		vec, err := s.Query(context.Background(), q, time.Now())
		if err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		if len(vec) != 1 || vec[0].Value != float64(len(q)) || vec[0].Count != 10 {
			t.Fatalf("%q: got %+v, want the query's length %d", q, vec, len(q))
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a query ran as shell code")
	}
	// A pipeline names the query itself and gets it once, where it says.
	p, _ := New(Config{Run: `printf '%s' "$1" | wc -c | tr -d ' '`, Timeout: 5 * time.Second})
	vec, err := p.Query(context.Background(), "latency p99", time.Now())
	if err != nil || len(vec) != 1 || vec[0].Value != float64(len("latency p99")) {
		t.Fatalf("a pipeline using $1: %v, %v", vec, err)
	}
}

func TestQueryFailures(t *testing.T) {
	// The query is appended to a line that does not use it: such a line
	// here ends with "; true", which takes it.
	cases := []struct {
		name, run string
		timeout   time.Duration
		want      string
		empty     bool
	}{
		{name: "no output is no data", run: "true", empty: true},
		{name: "a failing command says why", run: "echo 'no such metric' >&2; exit 3", want: "exit status 3: no such metric"},
		{name: "a hanging command is stopped", run: "sleep 30; true", timeout: 300 * time.Millisecond, want: "ran longer than 300ms"},
		{name: "a hanging child is stopped too", run: "(sleep 30; echo 1) & wait; true", timeout: 300 * time.Millisecond, want: "ran longer than 300ms"},
		{name: "a flood is refused", run: "yes 1 | head -c 200000; true", want: "more than 65536 bytes"},
		{name: "words are not a value", run: "echo fine; true", want: `"fine" is not a number`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := New(Config{Run: c.run, Timeout: max(c.timeout, 5*time.Second)})
			if c.timeout > 0 {
				s, err = New(Config{Run: c.run, Timeout: c.timeout})
			}
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			vec, err := s.Query(context.Background(), "q", time.Now())
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %s", took)
			}
			if c.empty {
				if err != nil || len(vec) != 0 {
					t.Fatalf("got %v, %v; want no data", vec, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	s, _ := New(Config{Run: "echo 1"})
	if _, err := s.QueryRange(context.Background(), "q", time.Now(), time.Now(), time.Second); !errors.Is(err, metrics.ErrUnsupported) {
		t.Errorf("QueryRange: %v", err)
	}
}

// FuzzParseValue: any output of a command or of a URL's jq expression is
// read as a value, no data, or an error; samples are never negative.
func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"0.012", "NaN", `{"value": 1, "samples": 2}`, `{"value": "+Inf"}`, "null", "", `{"value": {"a": 1}}`, "1e400", `{"samples": -1, "value": 1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		_, n, ok, err := ParseValue(out)
		if err == nil && ok && (n < 0 || math.IsNaN(n) || math.IsInf(n, 0)) {
			t.Fatalf("%q gives %g samples", out, n)
		}
	})
}
