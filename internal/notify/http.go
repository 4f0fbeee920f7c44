package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/textutil"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// Request is one HTTP call of a sink.
type Request struct {
	Method  string
	URL     string
	Headers map[string]string
	Body    []byte
	// Secrets are scrubbed from any error.
	Secrets []string
}

// Do sends r and returns the answer's body on 2xx. 429 and 5xx answers and
// network failures are RetryErrors (with Retry-After); other answers are
// plain errors quoting the server. Errors never carry the URL or secrets.
func Do(ctx context.Context, client *http.Client, r Request) ([]byte, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return nil, redact(fmt.Errorf("building the request: %w", err), r.Secrets...)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "deploywatch")
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, redact(&RetryError{Err: err}, r.Secrets...)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return body, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return nil, redact(&RetryError{Err: fmt.Errorf("HTTP %d: %s", resp.StatusCode, snippet(body, r.Secrets)), After: retryAfter(resp)}, r.Secrets...)
	default:
		return nil, redact(fmt.Errorf("HTTP %d: %s", resp.StatusCode, snippet(body, r.Secrets)), r.Secrets...)
	}
}

func retryAfter(resp *http.Response) time.Duration {
	v := resp.Header.Get("Retry-After")
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// snippet quotes an answer without the secrets it may echo.
func snippet(b []byte, secrets []string) string {
	return textutil.Excerpt([]byte(textutil.Redact(string(b), secrets...)), 200)
}

// Truncate cuts s to at most n runes, marking the cut.
func Truncate(s string, n int) string { return textutil.Truncate(s, n) }

// Title is the one-line headline of a message.
func (m Message) Title() string {
	env := ""
	if m.Environment != "" {
		env = " to " + m.Environment
	}
	switch m.Kind {
	case event.Started:
		return fmt.Sprintf("Deploying %s %s%s", m.Service, m.Version, env)
	case event.Verdict:
		switch m.Verdict {
		case "stable":
			return fmt.Sprintf("Deploy of %s %s%s is stable", m.Service, m.Version, env)
		case "failed":
			if m.Rollback != nil && m.Rollback.Performed && m.Rollback.OK {
				return fmt.Sprintf("Deploy of %s %s%s failed and was rolled back to %s", m.Service, m.Version, env, m.Rollback.Revision)
			}
			return fmt.Sprintf("Deploy of %s %s%s failed", m.Service, m.Version, env)
		}
		return fmt.Sprintf("Deploy of %s %s%s could not be judged", m.Service, m.Version, env)
	case event.RollbackStarted:
		return fmt.Sprintf("Rolling back %s %s%s", m.Service, m.Version, env)
	case event.RollbackDone:
		return fmt.Sprintf("Rolled back %s%s to %s", m.Service, env, m.PreviousVersion)
	case event.RollbackFailed:
		return fmt.Sprintf("ROLLBACK FAILED for %s %s%s", m.Service, m.Version, env)
	case event.Breached:
		return fmt.Sprintf("%s %s%s: a check breached", m.Service, m.Version, env)
	case event.Resumed:
		return fmt.Sprintf("Resumed watching %s %s%s", m.Service, m.Version, env)
	}
	return fmt.Sprintf("%s %s%s: %s", m.Service, m.Version, env, m.Kind)
}

// Evidence describes the deciding check in one line: query, value,
// baseline, rule, window.
func (m Message) Evidence() string {
	c := m.Check
	if c == nil {
		return ""
	}
	return fmt.Sprintf("%s = %s (baseline %s, rule %s, window %s) — %s",
		c.Name, watch.FormatValue(c.Value, c.Unit), watch.FormatValue(c.Baseline, c.Unit), c.Rule, c.Window, c.Query)
}
