package textutil

import "testing"

func TestTruncateAndExcerpt(t *testing.T) {
	cases := []struct{ in, want string }{
		{"short", "short"},
		{"héllo wörld", "héllo w…"},
		{"", "(empty)"},
		{"  a\n\tb  ", "a b"},
	}
	for _, c := range cases {
		if got := Excerpt([]byte(c.in), 8); got != c.want {
			t.Errorf("Excerpt(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := Truncate("日本語のテキスト", 4); got != "日本語…" {
		t.Errorf("Truncate cut a rune: %q", got)
	}
}
