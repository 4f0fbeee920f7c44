package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// resume takes up the watch saved in a state file. Every refusal (a
// corrupt, truncated or newer state; a config that changed or is of
// another service; a flag that contradicts the state) is exit 2, before
// anything is deployed or rolled back.
func (a *app) resume(cmd *cobra.Command, f watchFlags) error {
	ctx := cmd.Context()
	if err := checkOutput(f.output); err != nil {
		return err
	}
	for _, name := range []string{"started-at", "state", "kubeconfig", "context", "namespace", "server", "server-token-env", "commit-time"} {
		if cmd.Flags().Changed(name) {
			return usagef("--%s cannot be given with --resume: the state file holds the watch's settings", name)
		}
	}
	state, s, err := openStateFile(f.resume)
	if err != nil {
		return err
	}
	defer state.close()
	if s.Report.Verdict.Ended() {
		// Nothing is done again: not the policy, not the notifications,
		// not even the report; the config is not even read.
		if f.output == "json" {
			data, err := s.Report.Encode()
			if err != nil {
				return err
			}
			_, _ = a.stdout.Write(data)
		} else {
			fmt.Fprintf(a.stdout, "the watch of %s %s had already ended %s: %s\n",
				s.Report.Deploy.Service, s.Report.Deploy.Version, s.Report.Verdict, s.Report.Reason)
		}
		return &exitError{code: s.Report.Verdict.ExitCode()}
	}
	o, err := unmarshalOrigin(s.Origin)
	if err != nil {
		return usagef("--resume %s: %v", f.resume, err)
	}
	if cmd.Flags().Changed("version") && f.version != s.Request.Version {
		return usagef("--version %s: the saved watch is of version %s", f.version, s.Request.Version)
	}
	cfgPath := o.Config.Path
	if cmd.Flags().Changed("file") {
		if cfgPath, err = filepath.Abs(f.file); err != nil {
			return usagef("-f %s: %v", f.file, err)
		}
	}
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return usagef("--resume %s: the watch's config: %v", f.resume, err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != o.Config.SHA256 {
		return usagef("--resume %s: the config %s is not the one the watch began with (sha256 %.12s…, now %.12s…): a resumed watch must judge by the same rules; restore that config or start a new watch",
			f.resume, cfgPath, o.Config.SHA256, hex.EncodeToString(sum[:]))
	}
	cfg, err := config.Load(data, cfgPath)
	if err != nil {
		return err
	}
	if s.Report.Deploy.Service != cfg.Service {
		return usagef("--resume %s: it is a watch of service %q, and %s is the config of %q", f.resume, s.Report.Deploy.Service, cfgPath, cfg.Service)
	}
	// The config is where it was found this time, for the next resume.
	o.Config.Path = cfgPath
	if f.report != "" {
		if o.Report, err = absWritable(f.report); err != nil {
			return usagef("--report: %v", err)
		}
		if sameFile(o.Report, state.path) {
			return usagef("--report names the state file %s: the report would overwrite it", state.path)
		}
	}
	if s.Origin, err = marshalOrigin(o); err != nil {
		return err
	}
	return a.follow(ctx, cfg, f.output, o, state, func(eng *watch.Engine) (*watch.Report, error) {
		rep, err := eng.Resume(ctx, s)
		if errors.Is(err, watch.ErrStateMismatch) || errors.Is(err, watch.ErrStateCorrupt) {
			return nil, usagef("--resume %s: %v", f.resume, err)
		}
		return rep, err
	})
}
