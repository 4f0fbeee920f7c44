package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/deploywatch/deploywatch/internal/judge"
)

// Duration is a time.Duration written as "30s", "5m", "1h30m" or, for
// long spans, with days: "90d", "1d12h".
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses a Go duration string; a bare number is refused
// because "30" could mean seconds or nanoseconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return posErrorf(n, "want a duration such as 30s or 5m")
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return posErrorf(n, "%q is not a duration: want e.g. 30s, 5m, 1h30m, 7d", n.Value)
	}
	if v < 0 {
		return posErrorf(n, "duration %q is negative", n.Value)
	}
	*d = Duration(v)
	return nil
}

// ParseDuration reads a Go duration with an optional leading count of
// days: "90d", "1d12h", "30s".
func ParseDuration(s string) (time.Duration, error) {
	days, rest, found := strings.Cut(s, "d")
	if !found {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseUint(days, 10, 16)
	if err != nil || strings.ContainsAny(days, "+-") {
		return 0, fmt.Errorf("time: invalid duration %q", s)
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest == "" {
		return d, nil
	}
	r, err := time.ParseDuration(rest)
	if err != nil || r < 0 {
		return 0, fmt.Errorf("time: invalid duration %q", s)
	}
	return d + r, nil
}

// MarshalYAML writes the duration back in its short form.
func (d Duration) MarshalYAML() (any, error) { return FormatDuration(d.D()), nil }

// FormatDuration writes a duration as Go does, without trailing zero units
// ("5m" rather than "5m0s"), and whole days as days ("90d").
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Quantity is a number with an optional unit: 0.1, 10%, 100ms, 512Mi.
type Quantity float64

// UnmarshalYAML parses the units judge.ParseQuantity knows.
func (q *Quantity) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return posErrorf(n, "want a number such as 0.5, 10%%, 100ms or 512Mi")
	}
	v, err := judge.ParseQuantity(n.Value)
	if err != nil {
		return posErrorf(n, "%v", err)
	}
	*q = Quantity(v)
	return nil
}

// MarshalYAML writes the plain number.
func (q Quantity) MarshalYAML() (any, error) { return float64(q), nil }

// Rule is a check line as written in the file: "> 1%", "> 2x baseline".
type Rule struct{ judge.Rule }

// UnmarshalYAML parses the rule syntax (see judge.ParseRule).
func (r *Rule) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return posErrorf(n, `want a rule such as "> 1%%" or "> 2x baseline"`)
	}
	v, err := judge.ParseRule(n.Value)
	if err != nil {
		return posErrorf(n, "%v", err)
	}
	r.Rule = v
	return nil
}

// MarshalYAML writes the rule as the user wrote it.
func (r Rule) MarshalYAML() (any, error) { return r.String(), nil }

// IsZero lets omitempty drop an unset rule.
func (r Rule) IsZero() bool { return r.Rule.IsZero() }

// posError is an error at a place in the file.
type posError struct {
	line, col int
	msg       string
}

func (e *posError) Error() string { return fmt.Sprintf("%d:%d: %s", e.line, e.col, e.msg) }

func posErrorf(n *yaml.Node, format string, args ...any) error {
	return &posError{line: n.Line, col: n.Column, msg: fmt.Sprintf(format, args...)}
}

// formatFloat writes a number without needless digits.
func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
