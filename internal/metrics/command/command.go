// Package command is a metric source that runs a command for each query:
// deploywatch's escape hatch for any backend it does not speak, as Argo
// Rollouts' Job provider is.
//
// The command gets the query as its argument ($1, never interpolated into
// the command line: appended as "$1" unless the line uses $1, $@, $* or
// $DEPLOYWATCH_QUERY itself) and in $DEPLOYWATCH_QUERY, and the time asked
// about in $DEPLOYWATCH_TIME (RFC 3339). It prints a number, or JSON
// {"value": <number>, "samples": <number>}; nothing, null or a null value
// is no data. A value is not a count: checks on this source have no
// significance test.
package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/deploywatch/deploywatch/internal/metrics"
)

// maxOutput bounds what is read of the command's output: a value is a
// line, not a file.
const maxOutput = 64 << 10

// Config is the command and its bounds.
type Config struct {
	// Run is the command line, run by Shell with the query appended as $1.
	Run string
	// Shell runs Run. Default /bin/sh.
	Shell string
	// Dir is the working directory (the config file's folder).
	Dir string
	// Timeout bounds one run. Default 10s.
	Timeout time.Duration
}

// Source runs the command. It is safe for concurrent use.
type Source struct {
	cfg Config
	// line is the shell's command line: Run, and the query as "$@" unless
	// Run uses it itself.
	line string
}

// New returns a source.
func New(cfg Config) (*Source, error) {
	if strings.TrimSpace(cfg.Run) == "" {
		return nil, errors.New("metrics.command.run is empty")
	}
	if cfg.Shell == "" {
		cfg.Shell = "/bin/sh"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	s := &Source{cfg: cfg, line: cfg.Run}
	if !usesQuery(cfg.Run) {
		s.line += ` "$@"`
	}
	return s, nil
}

// String names the source.
func (s *Source) String() string { return "metrics.command" }

// Query runs the command for expr as of at.
func (s *Source) Query(ctx context.Context, expr string, at time.Time) (metrics.Vector, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, s.cfg.Timeout, fmt.Errorf("metrics.command ran longer than %s", s.cfg.Timeout))
	defer cancel()
	// The query is an argument ($1), never part of the command line: no
	// value in it can reach the shell as code.
	cmd := exec.CommandContext(ctx, s.cfg.Shell, "-c", s.line, "deploywatch-query", expr)
	cmd.Dir = s.cfg.Dir
	cmd.Env = append(os.Environ(), "DEPLOYWATCH_QUERY="+expr, "DEPLOYWATCH_TIME="+at.UTC().Format(time.RFC3339Nano))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stdout, stderr capped
	stdout.max, stderr.max = maxOutput, 4<<10
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 300 {
			msg = "…" + msg[len(msg)-300:]
		}
		if msg != "" {
			return nil, fmt.Errorf("metrics.command: %w: %s", err, msg)
		}
		return nil, fmt.Errorf("metrics.command: %w", err)
	}
	if stdout.over {
		return nil, fmt.Errorf("metrics.command printed more than %d bytes: a value is one number", maxOutput)
	}
	v, n, ok, err := ParseValue(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("metrics.command: %w", err)
	}
	if !ok {
		return nil, nil
	}
	return metrics.Vector{{Labels: metrics.Labels{}, Value: v, Time: at, Count: n}}, nil
}

// usesQuery reports whether a command line refers to the query itself
// ($1, $@, $*, $DEPLOYWATCH_QUERY); one that does not gets it appended, so
// that "run: ./metric.sh" is given the query as its argument.
func usesQuery(line string) bool {
	for _, ref := range []string{"$1", "${1", "$@", "${@", "$*", "${*", "DEPLOYWATCH_QUERY"} {
		if strings.Contains(line, ref) {
			return true
		}
	}
	return false
}

// QueryRange is not offered: a command answers for one moment.
func (s *Source) QueryRange(context.Context, string, time.Time, time.Time, time.Duration) (metrics.Matrix, error) {
	return nil, fmt.Errorf("%w: metrics.command answers for one moment, not a range", metrics.ErrUnsupported)
}

// ParseValue reads a value as the generic sources give it: a number, or
// JSON {"value": <number>, "samples": <number>}. Nothing, null and a null
// value are no data (ok false). NaN and ±Inf are values: the judge decides
// what they mean.
func ParseValue(out []byte) (value, samples float64, ok bool, err error) {
	s := strings.TrimSpace(string(out))
	if s == "" || s == "null" {
		return 0, 0, false, nil
	}
	if !strings.HasPrefix(s, "{") {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, 0, false, fmt.Errorf("the output %s is not a number or {\"value\": ...}", quote(s))
		}
		return v, 0, true, nil
	}
	var doc struct {
		Value   json.RawMessage `json:"value"`
		Samples json.RawMessage `json:"samples"`
	}
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		return 0, 0, false, fmt.Errorf("the output is not JSON: %w", err)
	}
	v, ok, err := number(doc.Value)
	if err != nil || !ok {
		return 0, 0, false, err
	}
	n, hasN, err := number(doc.Samples)
	if err != nil {
		return 0, 0, false, fmt.Errorf("samples: %w", err)
	}
	if hasN && (n < 0 || math.IsNaN(n) || math.IsInf(n, 0)) {
		return 0, 0, false, fmt.Errorf("samples %g: want a count, 0 or more", n)
	}
	return v, n, true, nil
}

// number reads a JSON number, a numeric string ("NaN", "+Inf") or null.
func number(raw json.RawMessage) (float64, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err == nil {
		return f, true, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f, true, nil
		}
	}
	return 0, false, fmt.Errorf("%s is not a number", quote(string(raw)))
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strconv.Quote(s)
}

// capped keeps the first max bytes written and notes that more came. (It
// holds its buffer rather than embedding it: an embedded bytes.Buffer's
// ReadFrom would let io.Copy write past the cap.)
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room < len(p) {
		c.over = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *capped) Bytes() []byte  { return c.buf.Bytes() }
func (c *capped) String() string { return c.buf.String() }
