// Package textutil shortens text for messages: answers quoted in errors,
// fields with length limits.
package textutil

import "strings"

// Truncate cuts s to at most n runes, marking the cut with "…".
func Truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n || n < 1 {
		return s
	}
	return string(r[:n-1]) + "…"
}

// Excerpt quotes a body in one line: whitespace folded, at most n runes,
// "(empty)" for nothing.
func Excerpt(b []byte, n int) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if s == "" {
		return "(empty)"
	}
	return Truncate(s, n)
}

// Redact replaces every non-empty secret in s by "***". Quote an answer
// with Excerpt(Redact(...)), in that order: a cut made first could leave a
// secret's first half behind.
func Redact(s string, secrets ...string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "***")
		}
	}
	return s
}
