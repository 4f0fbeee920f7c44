package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/dashboard"
)

// access is who may use the API: bearer tokens with scopes, and whether
// reading is open to anyone.
type access struct {
	openRead bool
	tokens   []token
}

type token struct {
	name string
	// sum is the token's SHA-256: tokens are compared by it, in constant
	// time, so that neither their content nor their length leaks.
	sum    [32]byte
	scopes map[string]bool
}

// loadAccess reads the tokens from the environment or their files. A
// token that is missing or empty is a config error naming its field.
func loadAccess(api config.API, env func(string) (string, bool), resolve func(string) string) (*access, error) {
	a := &access{openRead: api.OpenRead}
	for i, t := range api.Tokens {
		var secret string
		switch {
		case t.TokenEnv != "":
			v, ok := env(t.TokenEnv)
			if !ok || strings.TrimSpace(v) == "" {
				return nil, fmt.Errorf("api.tokens[%d].token_env: $%s is not set", i, t.TokenEnv)
			}
			secret = strings.TrimSpace(v)
		default:
			b, err := os.ReadFile(resolve(t.TokenFile))
			if err != nil {
				var pe *os.PathError
				if errors.As(err, &pe) {
					err = pe.Err
				}
				return nil, fmt.Errorf("api.tokens[%d].token_file %s: %v", i, t.TokenFile, err)
			}
			secret = strings.TrimSpace(string(b))
			if secret == "" {
				return nil, fmt.Errorf("api.tokens[%d].token_file %s: empty", i, t.TokenFile)
			}
		}
		tok := token{name: t.Name, sum: sha256.Sum256([]byte(secret)), scopes: map[string]bool{}}
		for _, sc := range t.Scopes {
			tok.scopes[sc] = true
		}
		a.tokens = append(a.tokens, tok)
	}
	return a, nil
}

// authorize checks a request for a scope, before its body is read. It
// returns the token's name ("" for an open read), or the status to answer
// with: 401 without a valid token, 403 with a token lacking the scope. A
// read may also present its token in the dashboard's cookie; a write
// never may, so that no other site can make a browser write.
func (a *access) authorize(r *http.Request, scope string) (who string, status int, msg string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if scope == config.ScopeRead {
			if c, err := r.Cookie(dashboard.CookieName); err == nil && c.Value != "" {
				if t := a.find(c.Value); t != nil && t.scopes[scope] {
					return t.name, 0, ""
				}
			}
			if a.openRead {
				return "", 0, ""
			}
		}
		return "", http.StatusUnauthorized, "this needs a bearer token (Authorization: Bearer ...)"
	}
	presented, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || presented == "" {
		return "", http.StatusUnauthorized, "the Authorization header is not a bearer token"
	}
	found := a.find(presented)
	switch {
	case found == nil:
		return "", http.StatusUnauthorized, "the bearer token is not valid"
	case !found.scopes[scope]:
		return found.name, http.StatusForbidden, fmt.Sprintf("the token %q does not have the %s scope", found.name, scope)
	}
	return found.name, 0, ""
}

// find returns the token presented, or nil. Every token is compared,
// whichever matches.
func (a *access) find(presented string) *token {
	sum := sha256.Sum256([]byte(presented))
	var found *token
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], a.tokens[i].sum[:]) == 1 {
			found = &a.tokens[i]
		}
	}
	return found
}

// mayRead reports whether a request may read (the dashboard's pages).
func (a *access) mayRead(r *http.Request) bool {
	_, status, _ := a.authorize(r, config.ScopeRead)
	return status == 0
}

// readToken reports whether a token may read (the dashboard's login).
func (a *access) readToken(presented string) bool {
	t := a.find(presented)
	return t != nil && t.scopes[config.ScopeRead]
}
