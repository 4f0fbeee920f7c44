package watch

import (
	"testing"

	"go.uber.org/goleak"
)

// The engine starts goroutines for each round of queries; none may
// outlive a watch.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
