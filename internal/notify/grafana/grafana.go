// Package grafana marks each deploy on Grafana's graphs: a region
// annotation opened when the deploy starts and closed at its verdict, with
// the outcome in its text and tags.
package grafana

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/notify"
	"github.com/deploywatch/deploywatch/internal/textutil"
)

// Grafana is one Grafana's annotations API.
type Grafana struct {
	url          string
	token        string
	dashboardUID string
	panelID      int
	tags         []string
	filter       notify.Filter
	client       *http.Client

	mu  sync.Mutex
	ids map[string]int64 // deploy -> annotation id
}

var _ notify.Sink = (*Grafana)(nil)

// Options configure the sink.
type Options struct {
	// URL is Grafana's base address; /api/annotations is appended.
	URL string
	// Token is a service account token with annotations:create.
	Token        string
	DashboardUID string
	PanelID      int
	// Tags are added to deployment, service, environment and version.
	Tags   []string
	Events []string
	Client *http.Client
}

// New returns a sink that annotates the start and the verdict.
func New(o Options) *Grafana {
	return &Grafana{url: strings.TrimSuffix(o.URL, "/"), token: o.Token, dashboardUID: o.DashboardUID, panelID: o.PanelID,
		tags: o.Tags, client: o.Client, ids: map[string]int64{},
		filter: notify.NewFilter(o.Events, event.Started, event.Verdict)}
}

// Name is "grafana".
func (g *Grafana) Name() string { return "grafana" }

// Wants applies the event filter.
func (g *Grafana) Wants(k event.Kind) bool { return g.filter.Wants(k) }

// Annotation is the body of POST /api/annotations; times are epoch
// milliseconds, and TimeEnd makes it a region.
type Annotation struct {
	DashboardUID string   `json:"dashboardUID,omitempty"`
	PanelID      int      `json:"panelId,omitempty"`
	Time         int64    `json:"time"`
	TimeEnd      int64    `json:"timeEnd,omitempty"`
	Tags         []string `json:"tags"`
	Text         string   `json:"text"`
}

// Send opens the region at the start and closes it at the verdict (PATCH
// /api/annotations/:id with timeEnd and the outcome). A verdict whose
// start was never annotated posts the whole region at once.
func (g *Grafana) Send(ctx context.Context, m notify.Message) error {
	a := g.annotation(m)
	g.mu.Lock()
	id, open := g.ids[m.ID()]
	g.mu.Unlock()
	if m.Kind == event.Started || !open {
		if m.Kind != event.Started {
			a.TimeEnd = m.At.UnixMilli()
		}
		body, _ := json.Marshal(a)
		resp, err := g.do(ctx, http.MethodPost, "/api/annotations", body)
		if err != nil {
			return err
		}
		var out struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(resp, &out); err != nil || out.ID == 0 {
			return fmt.Errorf("grafana answered without an annotation id: %s", textutil.Excerpt([]byte(textutil.Redact(string(resp), g.token)), 200))
		}
		if m.Kind == event.Started {
			g.mu.Lock()
			g.ids[m.ID()] = out.ID
			g.mu.Unlock()
		}
		return nil
	}
	patch := map[string]any{"time": a.Time, "timeEnd": m.At.UnixMilli(), "text": a.Text, "tags": a.Tags}
	body, _ := json.Marshal(patch)
	if _, err := g.do(ctx, http.MethodPatch, fmt.Sprintf("/api/annotations/%d", id), body); err != nil {
		return err
	}
	g.mu.Lock()
	delete(g.ids, m.ID())
	g.mu.Unlock()
	return nil
}

func (g *Grafana) annotation(m notify.Message) Annotation {
	tags := []string{"deployment", "service:" + m.Service, "version:" + m.Version}
	if m.Environment != "" {
		tags = append(tags, "environment:"+m.Environment)
	}
	if m.Verdict != "" {
		tags = append(tags, "verdict:"+m.Verdict)
	}
	tags = append(tags, g.tags...)
	text := m.Title()
	if m.TriggeredBy != "" {
		text += " by " + m.TriggeredBy
	}
	if m.Reason != "" && m.Kind != event.Started {
		text += "\n" + m.Reason
	}
	if m.RunURL != "" {
		text += fmt.Sprintf("\n<a href=%q>CI run</a>", m.RunURL)
	}
	return Annotation{DashboardUID: g.dashboardUID, PanelID: g.panelID, Time: m.StartedAt.UnixMilli(), Tags: tags, Text: text}
}

func (g *Grafana) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	return notify.Do(ctx, g.client, notify.Request{
		Method: method, URL: g.url + path, Body: body,
		Headers: map[string]string{"Authorization": "Bearer " + g.token, "Accept": "application/json"},
		Secrets: []string{g.token},
	})
}
