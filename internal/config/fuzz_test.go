package config

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/deploywatch/deploywatch/internal/testenv"
)

// FuzzLoad: no file, however broken, panics or hangs the loader; a file it
// accepts gives an effective configuration that loads again to the same.
// Seeds: testdata/fuzz/FuzzLoad (the good and bad fixtures).
func FuzzLoad(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var c *Config
		var err error
		testenv.Within(t, 5*time.Second, func() { c, err = Load(data, "fuzz.yaml") })
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("the error does not name the file: %v", err)
			}
			return
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("an accepted config cannot be written back: %v", err)
		}
		if _, err := Load(out, "effective.yaml"); err != nil {
			t.Fatalf("the effective config of an accepted file does not load: %v\n%s", err, out)
		}
	})
}

// FuzzExpand: expansion never panics, leaves a template without "$" as it
// is, and finds the variables Variables names.
func FuzzExpand(f *testing.F) {
	f.Add(`sum(increase(http_requests_total{$selector}[$since_warmup]))`, `job="api"`)
	f.Add(`rate(x{${selector},pod=~"$pods"}[$window]) $$ 1 foo$`, `namespace="$namespace"`)
	f.Add(`sum:trace.http.request.hits{$selector}.as_count()[$window]`, `service:$service,version:$version`)
	f.Add(`$unknown ${`, `$selector`)
	f.Fuzz(func(t *testing.T, tmpl, selector string) {
		v := Vars{Selector: selector, Window: time.Minute, SinceDeploy: time.Second, SinceWarmup: time.Hour,
			Platform: samplePlatformVars, Service: "api", Environment: "prod", Version: "v2"}
		out, err := Expand(tmpl, v)
		if err != nil {
			return
		}
		if !strings.Contains(tmpl, "$") && out != tmpl {
			t.Fatalf("%q expanded to %q without a variable", tmpl, out)
		}
		for _, name := range Variables(tmpl) {
			if _, known := v.lookup()[name]; !known {
				t.Fatalf("%q expanded although it names the unknown $%s", tmpl, name)
			}
		}
	})
}
