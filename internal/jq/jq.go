// Package jq compiles and runs the jq programs that configs and smoke
// suites hold (gojq), each run bounded: a program that loops or builds
// without end ([range(1e9)], repeat) is stopped after Budget, and its
// memory with it.
package jq

import (
	"context"
	"fmt"
	"time"

	"github.com/itchyny/gojq"
)

// Budget bounds one run.
const Budget = time.Second

// Compile parses and compiles expr: an undefined function or variable is
// an error now, not at the first run.
func Compile(expr string) (*gojq.Code, error) {
	q, err := gojq.Parse(expr)
	if err != nil {
		return nil, err
	}
	return gojq.Compile(q)
}

// First returns the first value code yields for doc, within Budget; ok is
// false when it yields none.
func First(ctx context.Context, code *gojq.Code, doc any) (v any, ok bool, err error) {
	ctx, cancel := context.WithTimeoutCause(ctx, Budget, fmt.Errorf("the jq program ran longer than %s", Budget))
	defer cancel()
	v, ok = code.RunWithContext(ctx, doc).Next()
	if !ok {
		return nil, false, nil
	}
	if e, isErr := v.(error); isErr {
		if ctx.Err() != nil {
			return nil, false, context.Cause(ctx)
		}
		return nil, false, e
	}
	return v, true, nil
}
