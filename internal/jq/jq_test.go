package jq

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestFirst(t *testing.T) {
	cases := []struct {
		expr, errHas string
		doc          any
		want         any
		ok           bool
	}{
		{expr: ".a", doc: map[string]any{"a": "x"}, want: "x", ok: true},
		{expr: "empty", doc: nil, ok: false},
		{expr: `error("no")`, doc: nil, errHas: "no"},
		{expr: "[range(1e9)] | length", doc: nil, errHas: "ran longer than 1s"},
		{expr: "def f: f; f", doc: nil, errHas: "ran longer than 1s"},
	}
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			code, err := Compile(c.expr)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			v, ok, err := First(context.Background(), code, c.doc)
			if took := time.Since(start); took > 3*Budget {
				t.Errorf("took %s", took)
			}
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("got %v, want an error saying %q", err, c.errHas)
				}
				return
			}
			if err != nil || ok != c.ok || v != c.want {
				t.Fatalf("got %v %v %v", v, ok, err)
			}
		})
	}
	if _, err := Compile(".a | nosuchfunction"); err == nil {
		t.Error("an undefined function compiled")
	}
}
