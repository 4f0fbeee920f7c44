// Package slack posts deploy messages to a Slack incoming webhook, as
// Block Kit with a plain-text fallback.
package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/notify"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// Block Kit limits (api.slack.com/reference/block-kit).
const (
	maxHeader      = 150
	maxSectionText = 3000
	maxField       = 2000
	maxFields      = 10
)

// Slack is an incoming webhook.
type Slack struct {
	webhookURL string
	filter     notify.Filter
	client     *http.Client
}

var _ notify.Sink = (*Slack)(nil)

// New returns a sink; by default it posts the start, the verdict and any
// rollback.
func New(webhookURL string, events []string, client *http.Client) *Slack {
	return &Slack{webhookURL: webhookURL, client: client,
		filter: notify.NewFilter(events, event.Started, event.Verdict, event.RollbackStarted, event.RollbackDone, event.RollbackFailed)}
}

// Name is "slack".
func (s *Slack) Name() string { return "slack" }

// Wants applies the event filter.
func (s *Slack) Wants(k event.Kind) bool { return s.filter.Wants(k) }

// Send posts the message. Slack answers 200 "ok"; errors are plain strings.
func (s *Slack) Send(ctx context.Context, m notify.Message) error {
	body, err := json.Marshal(Payload(m))
	if err != nil {
		return err
	}
	_, err = notify.Do(ctx, s.client, notify.Request{Method: http.MethodPost, URL: s.webhookURL, Body: body, Secrets: webhookSecrets(s.webhookURL)})
	return err
}

type text struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type block struct {
	Type     string `json:"type"`
	Text     *text  `json:"text,omitempty"`
	Fields   []text `json:"fields,omitempty"`
	Elements []text `json:"elements,omitempty"`
}

type payload struct {
	Text   string  `json:"text"`
	Blocks []block `json:"blocks"`
}

// Payload builds the webhook body: a header, the reason with the evidence,
// the deploy's fields and links, within Block Kit's limits.
func Payload(m notify.Message) any {
	icon := map[event.Kind]string{
		event.Started: ":rocket:", event.RollbackStarted: ":rewind:", event.RollbackDone: ":leftwards_arrow_with_hook:",
		event.RollbackFailed: ":rotating_light:", event.Breached: ":warning:",
	}[m.Kind]
	if m.Kind == event.Verdict {
		icon = map[string]string{"stable": ":white_check_mark:", "failed": ":x:"}[m.Verdict]
		if icon == "" {
			icon = ":grey_question:"
		}
	}
	title := m.Title()
	p := payload{Text: icon + " " + title}
	p.Blocks = append(p.Blocks, block{Type: "header", Text: &text{Type: "plain_text", Text: notify.Truncate(title, maxHeader)}})
	if m.Reason != "" || m.Check != nil {
		var b strings.Builder
		if m.Reason != "" {
			fmt.Fprintf(&b, "*Why:* %s", escape(m.Reason))
		}
		if c := m.Check; c != nil {
			fmt.Fprintf(&b, "\n*%s* = %s (baseline %s, rule `%s`, window %s)\n```%s```",
				escape(c.Name), watch.FormatValue(c.Value, c.Unit), watch.FormatValue(c.Baseline, c.Unit), escape(c.Rule), c.Window, escape(c.Query))
		}
		p.Blocks = append(p.Blocks, block{Type: "section", Text: &text{Type: "mrkdwn", Text: notify.Truncate(b.String(), maxSectionText)}})
	}
	fields := []text{
		{Type: "mrkdwn", Text: "*Service:*\n" + escape(m.Service)},
		{Type: "mrkdwn", Text: "*Version:*\n`" + escape(m.Version) + "`"},
	}
	if m.Environment != "" {
		fields = append(fields, text{Type: "mrkdwn", Text: "*Environment:*\n" + escape(m.Environment)})
	}
	if m.PreviousVersion != "" {
		fields = append(fields, text{Type: "mrkdwn", Text: "*Previous:*\n`" + escape(m.PreviousVersion) + "`"})
	}
	if m.TriggeredBy != "" {
		fields = append(fields, text{Type: "mrkdwn", Text: "*By:*\n" + escape(m.TriggeredBy)})
	}
	if rb := m.Rollback; rb != nil && (rb.Performed || rb.Note != "") {
		state := "rolled back"
		switch {
		case !rb.Performed:
			state = "not rolled back: " + rb.Note
		case !rb.OK:
			state = "rollback FAILED: " + rb.Error
		}
		fields = append(fields, text{Type: "mrkdwn", Text: "*Rollback:*\n" + escape(state)})
	}
	for i := range fields {
		fields[i].Text = notify.Truncate(fields[i].Text, maxField)
	}
	if len(fields) > maxFields {
		fields = fields[:maxFields]
	}
	p.Blocks = append(p.Blocks, block{Type: "section", Fields: fields})
	var links []string
	if m.RunURL != "" {
		links = append(links, "<"+m.RunURL+"|CI run>")
	}
	if m.DashboardURL != "" {
		links = append(links, "<"+m.DashboardURL+"|Dashboard>")
	}
	if len(links) > 0 {
		p.Blocks = append(p.Blocks, block{Type: "context", Elements: []text{{Type: "mrkdwn", Text: strings.Join(links, " · ")}}})
	}
	return p
}

// escape makes text safe inside mrkdwn: &, < and > are control characters.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// webhookSecrets are the forms the webhook URL's secret can take in an
// answer or an error: the whole URL, its path, and the token after
// /services/.
func webhookSecrets(u string) []string {
	out := []string{u}
	if p, err := url.Parse(u); err == nil && p.Path != "" && p.Path != "/" {
		out = append(out, p.Path, strings.TrimPrefix(p.Path, "/services/"))
	}
	return out
}
