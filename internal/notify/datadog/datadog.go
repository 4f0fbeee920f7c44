// Package datadog posts an event per deploy to Datadog's v1 events API, so
// metric graphs show when each deploy happened and how it ended.
package datadog

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/notify"
)

// Limits of POST /api/v1/events.
const (
	maxTitle = 100
	maxText  = 4000
	maxKey   = 100
)

// Datadog is one account's events API.
type Datadog struct {
	url    string
	apiKey string
	filter notify.Filter
	client *http.Client
}

var _ notify.Sink = (*Datadog)(nil)

// New returns a sink. baseURL is the API's address (https://api.<site>,
// or a proxy's); /api/v1/events is appended.
func New(baseURL, apiKey string, events []string, client *http.Client) *Datadog {
	return &Datadog{url: strings.TrimSuffix(baseURL, "/") + "/api/v1/events", apiKey: apiKey, client: client,
		filter: notify.NewFilter(events, event.Started, event.Verdict, event.RollbackFailed)}
}

// SiteURL is the API address of a site.
func SiteURL(site string) string { return "https://api." + site }

// Name is "datadog".
func (d *Datadog) Name() string { return "datadog" }

// Wants applies the event filter.
func (d *Datadog) Wants(k event.Kind) bool { return d.filter.Wants(k) }

// Event is the body of POST /api/v1/events; DateHappened is epoch seconds.
type Event struct {
	Title          string   `json:"title"`
	Text           string   `json:"text"`
	DateHappened   int64    `json:"date_happened"`
	Priority       string   `json:"priority"`
	AlertType      string   `json:"alert_type"`
	Tags           []string `json:"tags"`
	AggregationKey string   `json:"aggregation_key"`
	SourceTypeName string   `json:"source_type_name,omitempty"`
}

// Send posts the event; Datadog answers 202.
func (d *Datadog) Send(ctx context.Context, m notify.Message) error {
	body, err := json.Marshal(Build(m))
	if err != nil {
		return err
	}
	_, err = notify.Do(ctx, d.client, notify.Request{Method: http.MethodPost, URL: d.url, Body: body,
		Headers: map[string]string{"DD-API-KEY": d.apiKey}, Secrets: []string{d.apiKey}})
	return err
}

// Build makes the event: aggregated by deploy, alert type by outcome, tags
// env:, service:, version:, text in Datadog's Markdown block.
func Build(m notify.Message) Event {
	alert := "info"
	switch {
	case m.Kind == event.RollbackFailed:
		alert = "error"
	case m.Kind == event.Verdict && m.Verdict == "stable":
		alert = "success"
	case m.Kind == event.Verdict && m.Verdict == "failed":
		alert = "error"
	case m.Kind == event.Verdict:
		alert = "warning"
	}
	tags := []string{"service:" + m.Service, "version:" + m.Version, "source:deploywatch"}
	if m.Environment != "" {
		tags = append(tags, "env:"+m.Environment)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** `%s`", m.Service, m.Version)
	if m.PreviousVersion != "" {
		fmt.Fprintf(&b, " (was `%s`)", m.PreviousVersion)
	}
	if m.TriggeredBy != "" {
		fmt.Fprintf(&b, " by %s", m.TriggeredBy)
	}
	if m.Reason != "" {
		fmt.Fprintf(&b, "\n\n%s", m.Reason)
	}
	if ev := m.Evidence(); ev != "" {
		fmt.Fprintf(&b, "\n\n%s", ev)
	}
	if m.RunURL != "" {
		fmt.Fprintf(&b, "\n\n[CI run](%s)", m.RunURL)
	}
	const open, closing = "%%% \n", "\n %%%"
	text := open + notify.Truncate(b.String(), maxText-len(open)-len(closing)) + closing
	return Event{
		Title: notify.Truncate(m.Title(), maxTitle), Text: text, DateHappened: m.At.Unix(),
		Priority: "normal", AlertType: alert, Tags: tags,
		AggregationKey: notify.Truncate(m.ID(), maxKey), SourceTypeName: "deploywatch",
	}
}
