package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/deploywatch/deploywatch/internal/watch"
)

// stateFile is a watch's state file, held with an exclusive lock (on a
// ".lock" file beside it) for as long as a process follows the watch: two
// processes resuming one watch could roll it back twice. The kernel drops
// the lock when its process dies, however it dies.
type stateFile struct {
	path string
	lock *os.File
}

// createStateFile takes the state file for a new watch. A file that holds
// a watch in progress is refused: it is resumed, not overwritten.
func createStateFile(path string) (*stateFile, error) {
	abs, err := absWritable(path)
	if err != nil {
		return nil, usagef("--state: %v", err)
	}
	sf, err := lockState(abs)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return sf, nil
	case err != nil:
		sf.close()
		return nil, usagef("--state %s: %v", path, err)
	}
	s, err := watch.DecodeState(data)
	switch {
	case err != nil:
		sf.close()
		return nil, usagef("--state %s holds something this deploywatch cannot read (%v): it may be a watch in progress; remove the file to start anew", path, err)
	case !s.Report.Verdict.Ended():
		sf.close()
		return nil, usagef("--state %s holds a watch in progress (%s %s, %s phase): resume it with 'deploywatch watch --resume %s', or remove the file to start anew",
			path, s.Report.Deploy.Service, s.Report.Deploy.Version, lastPhase(s), path)
	}
	return sf, nil
}

// openStateFile takes the state file of a watch to resume and reads it.
func openStateFile(path string) (*stateFile, *watch.State, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, usagef("--resume %s: %v", path, err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, nil, usagef("--resume: %v", err)
	}
	s, err := watch.DecodeState(data)
	if err != nil {
		return nil, nil, usagef("--resume %s: %v", path, err)
	}
	sf, err := lockState(abs)
	if err != nil {
		return nil, nil, err
	}
	// Read again under the lock: another process may have moved it on.
	if data, err = os.ReadFile(abs); err == nil {
		s, err = watch.DecodeState(data)
	}
	if err != nil {
		sf.close()
		return nil, nil, usagef("--resume %s: %v", path, err)
	}
	return sf, s, nil
}

// lockState takes the lock of the state file at path, without waiting.
// The lock is a file beside it (FILE.lock), found through symbolic links
// so that two names of one state share one lock; it stays after use, as
// removing it could let two processes lock two files.
func lockState(path string) (*stateFile, error) {
	if dir, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
		path = filepath.Join(dir, filepath.Base(path))
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	lockPath := path + ".lock"
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, usagef("locking %s: %v", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(lockPath)
		f.Close()
		who := "another process"
		if pid, err := strconv.Atoi(strings.TrimSpace(string(holder))); err == nil {
			who = fmt.Sprintf("another deploywatch (pid %d)", pid)
		}
		return nil, usagef("%s is following the watch in %s: one process at a time", who, path)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &stateFile{path: path, lock: f}, nil
}

func (s *stateFile) close() {
	if s != nil && s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

func lastPhase(s *watch.State) string {
	if n := len(s.Report.Phases); n > 0 {
		return s.Report.Phases[n-1].Name
	}
	return "no"
}

func marshalOrigin(o origin) ([]byte, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("encoding the watch's origin: %w", err)
	}
	return b, nil
}

func unmarshalOrigin(raw []byte) (origin, error) {
	var o origin
	if len(raw) == 0 {
		return o, fmt.Errorf("%w: it does not name its config file (was it saved by deploywatch serve?)", watch.ErrStateCorrupt)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return o, fmt.Errorf("%w: its origin: %v", watch.ErrStateCorrupt, err)
	}
	if o.Config.Path == "" || o.Config.SHA256 == "" {
		return o, fmt.Errorf("%w: it does not name its config file", watch.ErrStateCorrupt)
	}
	return o, nil
}
