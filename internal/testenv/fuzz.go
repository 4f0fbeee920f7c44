package testenv

import (
	"runtime"
	"testing"
	"time"
)

// Within runs f and fails the test when it has not returned after d: a
// fuzz target's guard against an input that hangs the code under test
// (the fuzzer itself has no per-input limit).
func Within(tb testing.TB, d time.Duration, f func()) {
	tb.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		buf := make([]byte, 1<<20)
		tb.Fatalf("still running after %s: the input hangs it\n%s", d, buf[:runtime.Stack(buf, true)])
	}
}
