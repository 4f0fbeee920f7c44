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
// with: 401 without a valid token, 403 with a token lacking the scope.
func (a *access) authorize(r *http.Request, scope string) (who string, status int, msg string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if scope == config.ScopeRead && a.openRead {
			return "", 0, ""
		}
		return "", http.StatusUnauthorized, "this needs a bearer token (Authorization: Bearer ...)"
	}
	presented, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || presented == "" {
		return "", http.StatusUnauthorized, "the Authorization header is not a bearer token"
	}
	sum := sha256.Sum256([]byte(presented))
	var found *token
	for i := range a.tokens {
		// Every token is compared, whichever matches.
		if subtle.ConstantTimeCompare(sum[:], a.tokens[i].sum[:]) == 1 {
			found = &a.tokens[i]
		}
	}
	switch {
	case found == nil:
		return "", http.StatusUnauthorized, "the bearer token is not valid"
	case !found.scopes[scope]:
		return found.name, http.StatusForbidden, fmt.Sprintf("the token %q does not have the %s scope", found.name, scope)
	}
	return found.name, 0, ""
}
