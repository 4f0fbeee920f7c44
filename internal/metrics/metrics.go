// Package metrics defines the data a metric source answers with. The
// sources themselves live in sub-packages (prometheus: a server's HTTP API;
// embedded: deploywatch's own scraper and engine), and the interfaces they
// satisfy are declared by their consumers.
package metrics

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// ErrBadQuery marks a query the source refused to run (a syntax error or an
// expression it cannot execute). Retrying it cannot help.
var ErrBadQuery = errors.New("query rejected by the metric source")

// ErrSignIn marks credentials the source refused (HTTP 401 or 403).
// Retrying with the same credentials cannot help.
var ErrSignIn = errors.New("the metric source refused the credentials")

// ErrUnsupported marks a question the source cannot answer at all (a
// range query to a source that has only the present, PromQL to a source
// that speaks another language).
var ErrUnsupported = errors.New("not supported by the metric source")

// Labels are a series' label set.
type Labels map[string]string

// String renders labels as PromQL does: {a="1", b="2"}, sorted by name.
func (l Labels) String() string {
	keys := slices.Sorted(maps.Keys(l))
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + "=\"" + l[k] + "\"")
	}
	b.WriteByte('}')
	return b.String()
}

// Sample is one value of an instant query. Value may be NaN or ±Inf: the
// source said so, and the judge decides what that means.
type Sample struct {
	Labels Labels
	Value  float64
	Time   time.Time
	// Count is how many observations (points, samples) the value sums up,
	// when the source says; zero when it does not.
	Count float64
}

// Vector is the answer to an instant query. An empty Vector means no data,
// never zero.
type Vector []Sample

// Point is one value of a range query.
type Point struct {
	Time  time.Time
	Value float64
}

// Series is one labelled series of a range query.
type Series struct {
	Labels Labels
	Points []Point
}

// Matrix is the answer to a range query.
type Matrix []Series

// SplitRange splits a query of a language that names no time range
// (Datadog's) from the range written after it in brackets, as in PromQL:
// "sum:trace.http.request.hits{service:api}.as_count()[37s]" asks for the
// last 37 seconds. The range is a Go duration (deploywatch writes its
// variables in whole seconds).
func SplitRange(expr string) (query string, rng time.Duration, err error) {
	expr = strings.TrimSpace(expr)
	open := strings.LastIndexByte(expr, '[')
	if !strings.HasSuffix(expr, "]") || open < 0 {
		return "", 0, fmt.Errorf("%q does not end with the time it covers in brackets, e.g. [$window] or [$since_warmup]", expr)
	}
	query = strings.TrimSpace(expr[:open])
	rng, err = time.ParseDuration(expr[open+1 : len(expr)-1])
	switch {
	case err != nil:
		return "", 0, fmt.Errorf("range [%s]: want a duration such as [5m] or [$window]", expr[open+1:len(expr)-1])
	case rng <= 0:
		return "", 0, fmt.Errorf("range [%s] must be positive", expr[open+1:len(expr)-1])
	case query == "":
		return "", 0, fmt.Errorf("nothing before the range [%s]", expr[open+1:len(expr)-1])
	}
	return query, rng, nil
}
