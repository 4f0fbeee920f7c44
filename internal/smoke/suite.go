// Package smoke runs a declarative suite of HTTP checks against a service:
// the seed's smoke-tests.sh, done properly. Each check sends a request and
// states what the answer must be (status, jq assertions on the JSON body,
// body text, headers, latency); checks may capture values for later ones
// and run concurrently where they do not depend on each other.
package smoke

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/itchyny/gojq"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/jq"
)

// Suite is a smoke test file.
type Suite struct {
	// BaseURL is used when --base-url is not given.
	BaseURL string `yaml:"base_url,omitempty"`
	// Env lists the environment variables checks may use as ${NAME}. Their
	// values are secrets: never printed.
	Env []string `yaml:"env,omitempty"`
	// Headers are sent with every request.
	Headers map[string]string `yaml:"headers,omitempty"`
	// Timeout bounds each request. Default 10s.
	Timeout config.Duration `yaml:"timeout"`
	// Concurrency bounds the checks run at once. Default 8.
	Concurrency int     `yaml:"concurrency"`
	TLS         TLS     `yaml:"tls"`
	Checks      []Check `yaml:"checks"`

	path string
	doc  *config.Document
}

// TLS options for https base URLs.
type TLS struct {
	// CAFile is a PEM bundle to trust besides the system's.
	CAFile string `yaml:"ca_file,omitempty"`
	// InsecureSkipVerify trusts any certificate. For test environments only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify,omitempty"`
}

// Check is one request and its expectations.
type Check struct {
	Name string `yaml:"name"`
	// Method defaults to GET.
	Method string `yaml:"method"`
	// Path is relative to the base URL; an absolute URL is used as is.
	Path    string            `yaml:"path"`
	Headers map[string]string `yaml:"headers,omitempty"`
	Body    string            `yaml:"body,omitempty"`
	Expect  Expect            `yaml:"expect"`
	// Capture names values from the JSON answer (jq) for later checks,
	// which use them as ${name}.
	Capture map[string]string `yaml:"capture,omitempty"`
	// After names checks that must pass first. Using a captured variable
	// implies it.
	After   []string        `yaml:"after,omitempty"`
	Timeout config.Duration `yaml:"timeout,omitempty"`
	// Retries re-send a failing check, with Backoff doubling between tries,
	// for checks that need the new pods to settle. Default 0.
	Retries int             `yaml:"retries,omitempty"`
	Backoff config.Duration `yaml:"backoff,omitempty"`
	// FollowRedirects follows 3xx answers. Default false: a redirect is an
	// answer to judge.
	FollowRedirects bool `yaml:"follow_redirects,omitempty"`

	jq      []*gojq.Code
	capture map[string]*gojq.Code
	regex   []*regexp.Regexp
	headers map[string]*regexp.Regexp
}

// Expect is what a passing answer looks like.
type Expect struct {
	// Status lists accepted status codes. Default: any 2xx.
	Status []int `yaml:"status,omitempty"`
	// JQ expressions must each be true on the JSON body (".status == \"ok\"").
	JQ []string `yaml:"jq,omitempty"`
	// Contains are substrings the body must hold.
	Contains []string `yaml:"contains,omitempty"`
	// Regex are patterns the body must match.
	Regex []string `yaml:"regex,omitempty"`
	// Headers maps a header name to a pattern its value must match.
	Headers map[string]string `yaml:"headers,omitempty"`
	// MaxLatency fails an answer slower than this.
	MaxLatency config.Duration `yaml:"max_latency,omitempty"`
}

var varRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// LoadFile reads and checks a suite: jq expressions and patterns are
// compiled, names and dependencies checked, and every problem reported
// with its file, line and column.
func LoadFile(path string) (*Suite, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &config.Problems{Path: path, Items: []config.Problem{{Msg: "cannot read the suite: " + err.Error()}}}
	}
	return Load(data, path)
}

// Load parses a suite; path names it in errors.
func Load(data []byte, path string) (*Suite, error) {
	s := &Suite{Timeout: config.Duration(10 * time.Second), Concurrency: 8, path: path}
	doc, err := config.DecodeStrict(data, path, s, nil)
	if err != nil {
		return nil, err
	}
	s.doc = doc
	s.validate()
	if err := doc.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Suite) validate() {
	bad := s.doc.Problem
	if s.Concurrency < 1 {
		bad("concurrency", "must be at least 1")
	}
	if s.Timeout <= 0 {
		bad("timeout", "must be positive")
	}
	if len(s.Checks) == 0 {
		bad("checks", "the suite has no checks")
	}
	envs := map[string]bool{}
	for _, e := range s.Env {
		envs[e] = true
	}
	names := map[string]int{}
	captured := map[string]string{} // variable -> check
	for i, c := range s.Checks {
		if c.Name == "" {
			bad(fmt.Sprintf("checks[%d].name", i), "required")
		} else if _, dup := names[c.Name]; dup {
			bad(fmt.Sprintf("checks[%d].name", i), "%q is used by another check", c.Name)
		}
		names[c.Name] = i
		for v := range c.Capture {
			captured[v] = c.Name
		}
	}
	for i := range s.Checks {
		c := &s.Checks[i]
		at := func(f string) string { return fmt.Sprintf("checks[%d].%s", i, f) }
		if c.Method == "" {
			c.Method = "GET"
		}
		c.Method = strings.ToUpper(c.Method)
		if c.Path == "" {
			bad(at("path"), "required")
		}
		if c.Timeout == 0 {
			c.Timeout = s.Timeout
		}
		if c.Backoff == 0 {
			c.Backoff = config.Duration(500 * time.Millisecond)
		}
		if c.Retries < 0 || c.Retries > 20 {
			bad(at("retries"), "%d: want 0 to 20", c.Retries)
		}
		for _, code := range c.Expect.Status {
			if code < 100 || code > 599 {
				bad(at("expect.status"), "%d is not an HTTP status", code)
			}
		}
		for k, expr := range c.Expect.JQ {
			code, err := jq.Compile(expr)
			if err != nil {
				bad(fmt.Sprintf("checks[%d].expect.jq[%d]", i, k), "jq %q: %v", expr, err)
				continue
			}
			c.jq = append(c.jq, code)
		}
		c.capture = map[string]*gojq.Code{}
		for v, expr := range c.Capture {
			code, err := jq.Compile(expr)
			if err != nil {
				bad(at("capture."+v), "jq %q: %v", expr, err)
				continue
			}
			c.capture[v] = code
		}
		for k, re := range c.Expect.Regex {
			r, err := regexp.Compile(re)
			if err != nil {
				bad(fmt.Sprintf("checks[%d].expect.regex[%d]", i, k), "%v", err)
				continue
			}
			c.regex = append(c.regex, r)
		}
		c.headers = map[string]*regexp.Regexp{}
		for h, re := range c.Expect.Headers {
			r, err := regexp.Compile(re)
			if err != nil {
				bad(at("expect.headers."+h), "%v", err)
				continue
			}
			c.headers[h] = r
		}
		// Variables: captured by another check (an implied dependency) or
		// declared under env.
		for _, text := range append([]string{c.Path, c.Body}, mapValues(c.Headers)...) {
			for _, m := range varRE.FindAllStringSubmatch(text, -1) {
				switch from, ok := captured[m[1]]; {
				case ok && from == c.Name:
					bad(at("path"), "${%s} is captured by this same check", m[1])
				case ok:
					if !slices.Contains(c.After, from) {
						c.After = append(c.After, from)
					}
				case envs[m[1]]:
				default:
					bad(at("path"), "${%s} is neither captured by a check nor listed under env", m[1])
				}
			}
		}
		for _, dep := range c.After {
			if _, ok := names[dep]; !ok {
				bad(at("after"), "no check named %q", dep)
			}
		}
	}
	if cyc := s.cycle(); cyc != "" {
		bad("checks", "the checks depend on each other in a cycle: %s", cyc)
	}
}

// cycle finds a dependency cycle, or "".
func (s *Suite) cycle() string {
	state := map[string]int{} // 1 visiting, 2 done
	byName := map[string]*Check{}
	for i := range s.Checks {
		byName[s.Checks[i].Name] = &s.Checks[i]
	}
	var path []string
	var visit func(string) bool
	visit = func(n string) bool {
		switch state[n] {
		case 1:
			path = append(path, n)
			return true
		case 2:
			return false
		}
		state[n] = 1
		path = append(path, n)
		if c := byName[n]; c != nil {
			for _, d := range c.After {
				if visit(d) {
					return true
				}
			}
		}
		path = path[:len(path)-1]
		state[n] = 2
		return false
	}
	for _, c := range s.Checks {
		if visit(c.Name) {
			return strings.Join(path, " -> ")
		}
	}
	return ""
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
