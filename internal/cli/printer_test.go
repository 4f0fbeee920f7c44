//go:build linux

package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// openPTY opens a real pseudo-terminal: what the printer writes to the
// terminal side can be read back from the other, as a terminal emulator
// would.
func openPTY(t *testing.T) (term, emulator *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Raw output: no \n to \r\n translation, so the bytes read back are the
	// bytes written.
	tio, err := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Oflag &^= unix.OPOST
	if err := unix.IoctlSetTermios(int(s.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return s, m
}

// showWatch prints a short watch through a printer on w and returns what
// reached the screen.
func showWatch(t *testing.T, w *os.File, screen io.Reader, env map[string]string) string {
	t.Helper()
	got := make(chan string)
	go func() {
		var b bytes.Buffer
		_, _ = io.Copy(&b, screen) // ends with EIO when the terminal side closes
		got <- b.String()
	}()
	p := newPrinter(w, "text", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	v := 0.0004
	checks := []*watch.CheckResult{{Name: "error_rate", Verdict: judge.Pass, Value: &v, Unit: "percent"}}
	p.Event(watch.Event{Kind: event.PhaseStarted, Phase: watch.PhaseMonitor, Elapsed: 1})
	p.Event(watch.Event{Kind: event.Measured, Phase: watch.PhaseMonitor, Checks: checks, Elapsed: 2})
	time.Sleep(600 * time.Millisecond) // the status line refreshes every 250ms
	p.hookLine("deploy", "still here")
	p.Event(watch.Event{Kind: event.Verdict, Report: &watch.Report{Verdict: watch.Stable, Reason: "every check passed", Checks: checks}})
	p.close()
	w.Close()
	select {
	case s := <-got:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("the screen never closed")
		return ""
	}
}

func TestLiveViewOnATerminal(t *testing.T) {
	const eraseLine = "\r\033[K"
	cases := []struct {
		name     string
		env      map[string]string
		live     bool
		color    bool
		terminal bool
	}{
		{"a terminal gets the live status line in color", map[string]string{"TERM": "xterm"}, true, true, true},
		{"NO_COLOR keeps the status line, drops the colors", map[string]string{"TERM": "xterm", "NO_COLOR": ""}, true, false, true},
		{"a dumb terminal gets plain lines", map[string]string{"TERM": "dumb"}, false, false, true},
		{"a pipe gets plain lines", map[string]string{"TERM": "xterm"}, false, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var w, screen *os.File
			if tc.terminal {
				w, screen = openPTY(t)
			} else {
				r, pw, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close() })
				w, screen = pw, r
			}
			out := showWatch(t, w, screen, tc.env)
			if got := strings.Count(out, eraseLine+"\033[36m●\033[0m monitor") + strings.Count(out, eraseLine+"● monitor"); tc.live != (got >= 2) {
				t.Errorf("live status line drawn %d times, want live=%v:\n%q", got, tc.live, out)
			}
			if tc.live && !strings.Contains(out, "error_rate 0.04%") {
				t.Errorf("the status line does not show the check's value:\n%q", out)
			}
			if hasColor := strings.Contains(out, "\033[32m"); hasColor != tc.color {
				t.Errorf("colors %v, want %v:\n%q", hasColor, tc.color, out)
			}
			if !tc.live && strings.Contains(out, "\033[") {
				t.Errorf("escape sequences where none belong:\n%q", out)
			}
			// Printed lines never share a row with the status line: each
			// follows an erase, and the verdict ends the output clean.
			if !strings.Contains(out, "still here\n") || !strings.Contains(out, "every check passed\n") {
				t.Errorf("lines missing:\n%q", out)
			}
			if tc.live && !regexp.MustCompile(`\r\x1b\[K[^\r\n]*still here\n`).MatchString(out) {
				t.Errorf("a printed line does not begin on an erased row:\n%q", out)
			}
		})
	}
}
