package watch

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/testenv"
)

// FuzzDecodeState: a state file, however damaged, is refused with an
// error or read; one that is read writes back to itself, and resuming it
// ends in a report, never a panic or a hang. Seeds:
// testdata/fuzz/FuzzDecodeState (states saved at several points of a
// failing and a stable watch).
func FuzzDecodeState(f *testing.F) {
	bad := profile{rps: 50, errRatio: 0.05, latency: 1}
	kc := killCase{before: profile{rps: 50, errRatio: 0.001, latency: 1}, after: bad, run: true, requests: new([]request)}
	kc.world() // generates the traffic once
	f.Fuzz(func(t *testing.T, data []byte) {
		var st *State
		var err error
		testenv.Within(t, 5*time.Second, func() { st, err = DecodeState(data) })
		if err != nil {
			return
		}
		enc, err := st.Encode()
		if err != nil {
			t.Fatalf("a state that was read cannot be written: %v", err)
		}
		again, err := DecodeState(enc)
		if err != nil {
			t.Fatalf("a state written back is refused: %v", err)
		}
		if enc2, _ := again.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatal("a state changes when written back twice")
		}
		var rep *Report
		testenv.Within(t, 20*time.Second, func() {
			rep, err = kc.engine(t, kc.world(), nil, new([]byte)).Resume(context.Background(), st)
		})
		if err == nil && (rep == nil || rep.Verdict == "") {
			t.Fatalf("a resumed watch ended without a verdict: %+v", rep)
		}
	})
}
