package cli

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	"github.com/deploywatch/deploywatch/internal/ingest"
)

// defaultServerTokenEnv holds the ingest token for --server, unless
// --server-token-env names another variable.
const defaultServerTokenEnv = "DEPLOYWATCH_SERVER_TOKEN"

// commitTimeEnv is --commit-time from the environment.
const commitTimeEnv = "DEPLOYWATCH_COMMIT_TIME"

// serverRef is where a watch sends its history (--server), kept in the
// state so that a resumed watch goes on recording the same deploy. The
// token is not kept: a state file holds no secrets.
type serverRef struct {
	URL      string `json:"url"`
	TokenEnv string `json:"token_env"`
	// Key identifies the watch to serve across processes.
	Key string `json:"key"`
	// CommitTime is when the deployed commit was made, for lead time.
	CommitTime *time.Time `json:"commit_time,omitempty"`
}

// serverOf reads --server, --server-token-env and --commit-time into the
// reference a watch keeps.
func (a *app) serverOf(f watchFlags) (*serverRef, error) {
	commit, err := a.commitTime(f.commitTime)
	if err != nil {
		return nil, err
	}
	if f.server == "" {
		if commit != nil && f.commitTime != "" {
			return nil, usagef("--commit-time is for the history --server keeps: give --server too")
		}
		return nil, nil
	}
	ref := &serverRef{URL: f.server, TokenEnv: f.serverTokenEnv, CommitTime: commit}
	if ref.TokenEnv == "" {
		ref.TokenEnv = defaultServerTokenEnv
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	ref.Key = hex.EncodeToString(key)
	if _, err := ingest.APIBase(ref.URL); err != nil {
		return nil, usagef("%v", err)
	}
	if _, err := a.serverToken(ref); err != nil {
		return nil, err
	}
	return ref, nil
}

// serverToken is the ingest token, from the environment.
func (a *app) serverToken(ref *serverRef) (string, error) {
	token, _ := a.env(ref.TokenEnv)
	if strings.TrimSpace(token) == "" {
		return "", usagef("--server %s: $%s is empty: it must hold a token with the ingest scope (--server-token-env names another variable)", ref.URL, ref.TokenEnv)
	}
	return strings.TrimSpace(token), nil
}

// startIngest starts sending the watch to serve; nil without --server.
func (a *app) startIngest(ref *serverRef) (*ingest.Client, error) {
	if ref == nil {
		return nil, nil
	}
	token, err := a.serverToken(ref)
	if err != nil {
		return nil, err
	}
	return ingest.New(ingest.Options{URL: ref.URL, Token: token, Key: ref.Key, CommitTime: ref.CommitTime})
}

// commitTime reads --commit-time, else $DEPLOYWATCH_COMMIT_TIME.
func (a *app) commitTime(flag string) (*time.Time, error) {
	name, s := "--commit-time", flag
	if s == "" {
		name = "$" + commitTimeEnv
		s, _ = a.env(commitTimeEnv)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	t, err := parseStartedAt(s, time.Now())
	if err != nil {
		return nil, usagef("%s %q: want an RFC 3339 time (2026-11-25T09:40:00Z) or Unix seconds, as git log --format=%%cI or %%ct prints", name, s)
	}
	return &t, nil
}
