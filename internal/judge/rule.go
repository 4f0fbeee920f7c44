package judge

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Op is the comparison a rule makes between a measured value and its line.
type Op int

// The comparisons a rule can make. The zero Op is invalid so that a rule
// that was never parsed cannot silently compare.
const (
	OpInvalid Op = iota
	OpGreater
	OpGreaterEqual
	OpLess
	OpLessEqual
)

func (o Op) String() string {
	switch o {
	case OpGreater:
		return ">"
	case OpGreaterEqual:
		return ">="
	case OpLess:
		return "<"
	case OpLessEqual:
		return "<="
	}
	return "?"
}

// Upward reports whether the rule breaches when the value rises
// (">" and ">="); error rates and latencies are upward rules, a request
// rate that must not collapse is a downward one.
func (o Op) Upward() bool { return o == OpGreater || o == OpGreaterEqual }

// Rule is one line a check must not cross: either an absolute value
// ("> 1%", "> 500ms") or a multiple of the pre-deploy baseline
// ("> 2x baseline").
type Rule struct {
	Op Op
	// Value is the absolute line, or the factor applied to the baseline
	// when Relative is set.
	Value    float64
	Relative bool
	// text is the rule as the user wrote it, kept for evidence.
	text string
}

// ParseRule parses the rule syntax of the config file:
//
//	OP NUMBER[UNIT]      absolute: "> 0.01", "> 1%", "> 500ms", ">= 2s", "> 512Mi"
//	OP FACTORx baseline  relative: "> 2x baseline", "< 0.2x baseline"
//
// OP is one of >, >=, <, <=. Units: % (hundredths), ms, s, m (seconds), and
// Ki, Mi, Gi (bytes). Numbers must be finite.
func ParseRule(s string) (Rule, error) {
	text := strings.TrimSpace(s)
	if text == "" {
		return Rule{}, fmt.Errorf("empty rule: want e.g. \"> 1%%\" or \"> 2x baseline\"")
	}
	var r Rule
	rest := text
	switch {
	case strings.HasPrefix(rest, ">="):
		r.Op, rest = OpGreaterEqual, rest[2:]
	case strings.HasPrefix(rest, "<="):
		r.Op, rest = OpLessEqual, rest[2:]
	case strings.HasPrefix(rest, ">"):
		r.Op, rest = OpGreater, rest[1:]
	case strings.HasPrefix(rest, "<"):
		r.Op, rest = OpLess, rest[1:]
	default:
		return Rule{}, fmt.Errorf("rule %q must start with >, >=, < or <=", text)
	}
	rest = strings.TrimSpace(rest)
	if factor, ok := strings.CutSuffix(rest, "baseline"); ok {
		factor = strings.TrimSpace(factor)
		num, ok := strings.CutSuffix(factor, "x")
		if !ok {
			return Rule{}, fmt.Errorf("rule %q: a relative rule reads like \"> 2x baseline\"", text)
		}
		v, err := parseNumber(strings.TrimSpace(num))
		if err != nil {
			return Rule{}, fmt.Errorf("rule %q: factor: %w", text, err)
		}
		if v <= 0 {
			return Rule{}, fmt.Errorf("rule %q: the factor must be positive", text)
		}
		r.Value, r.Relative = v, true
	} else {
		v, err := ParseQuantity(rest)
		if err != nil {
			return Rule{}, fmt.Errorf("rule %q: %w", text, err)
		}
		r.Value = v
	}
	r.text = text
	return r, nil
}

// MustParseRule is ParseRule for rules known to be valid, such as built-in
// defaults and test tables. It panics on a bad rule.
func MustParseRule(s string) Rule {
	r, err := ParseRule(s)
	if err != nil {
		panic(err)
	}
	return r
}

// IsZero reports whether the rule is unset.
func (r Rule) IsZero() bool { return r.Op == OpInvalid }

// String returns the rule as written, or a canonical form.
func (r Rule) String() string {
	if r.IsZero() {
		return ""
	}
	if r.text != "" {
		return r.text
	}
	if r.Relative {
		return fmt.Sprintf("%s %sx baseline", r.Op, strconv.FormatFloat(r.Value, 'g', -1, 64))
	}
	return fmt.Sprintf("%s %s", r.Op, strconv.FormatFloat(r.Value, 'g', -1, 64))
}

// Line returns the absolute line the rule draws given the baseline.
// A relative rule without a usable baseline draws no line (ok is false).
func (r Rule) Line(baseline float64, haveBaseline bool) (line float64, ok bool) {
	if r.IsZero() {
		return 0, false
	}
	if !r.Relative {
		return r.Value, true
	}
	if !haveBaseline || math.IsNaN(baseline) || math.IsInf(baseline, 0) {
		return 0, false
	}
	return r.Value * baseline, true
}

// Crosses reports whether v is on the wrong side of line.
func (r Rule) Crosses(v, line float64) bool {
	switch r.Op {
	case OpGreater:
		return v > line
	case OpGreaterEqual:
		return v >= line
	case OpLess:
		return v < line
	case OpLessEqual:
		return v <= line
	}
	return false
}

// ParseQuantity parses a number with an optional unit: "0.01", "1%",
// "500ms", "2s", "1m", "512Mi", "1Gi", "1e3". The result is in base units
// (a ratio, seconds or bytes).
func ParseQuantity(s string) (float64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		scale  float64
	}{
		{"%", 0.01}, {"ms", 1e-3}, {"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30},
		{"s", 1}, {"m", 60},
	}
	scale := 1.0
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, scale = strings.TrimSpace(num), u.scale
			break
		}
	}
	v, err := parseNumber(s)
	if err != nil {
		return 0, err
	}
	return v * scale, nil
}

func parseNumber(s string) (float64, error) {
	if s == "" {
		return 0, fmt.Errorf("missing number")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a finite number", s)
	}
	return v, nil
}
