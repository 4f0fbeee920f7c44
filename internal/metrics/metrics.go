// Package metrics defines the data a metric source answers with. The
// sources themselves live in sub-packages (prometheus: a server's HTTP API;
// embedded: deploywatch's own scraper and engine), and the interfaces they
// satisfy are declared by their consumers.
package metrics

import (
	"errors"
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
