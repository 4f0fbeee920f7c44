// Package promql is deploywatch's one doorway to the Prometheus module:
// every import of github.com/prometheus/prometheus stays inside it, so the
// module's version is pinned in one place and its weight cannot spread.
package promql

import (
	"fmt"

	"github.com/prometheus/prometheus/promql/parser"
)

var exprParser = parser.NewParser(parser.Options{})

// Check parses expr and reports the parser's error, which names the
// position inside the expression.
func Check(expr string) error {
	if _, err := exprParser.ParseExpr(expr); err != nil {
		return err
	}
	return nil
}

// CheckSelector parses a label selector body such as `job="api",env="prod"`
// (without braces) by parsing it as the selector of a metric.
func CheckSelector(sel string) error {
	if _, err := exprParser.ParseMetricSelector("up{" + sel + "}"); err != nil {
		return fmt.Errorf("selector {%s}: %w", sel, err)
	}
	return nil
}
