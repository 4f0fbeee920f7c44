package server

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/dora"
	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/store/sqlstore"
	"github.com/deploywatch/deploywatch/internal/watch"
)

//go:embed openapi.json
var openAPI []byte

// Request body bounds.
const (
	maxBody       = 1 << 20 // a deploy, a label
	maxEventsBody = 8 << 20 // a batch of events and a report
)

// apiError is the body of every error: the message and, for a bad
// request, the field that is wrong.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"error":"encoding the answer"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func writeError(w http.ResponseWriter, status int, field, format string, args ...any) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="deploywatch"`)
	}
	writeJSON(w, status, apiError{Error: fmt.Sprintf(format, args...), Field: field})
}

// guard checks the request's token for the scope before the handler
// reads anything of it.
func (s *Server) guard(scope string, h func(w http.ResponseWriter, r *http.Request, who string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		who, status, msg := s.access.authorize(r, scope)
		if status != 0 {
			writeError(w, status, "", "%s", msg)
			return
		}
		h(w, r, who)
	}
}

// routes registers the API.
func (s *Server) routes(mux *http.ServeMux) {
	read, ingest, label := config.ScopeRead, config.ScopeIngest, config.ScopeLabel
	mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	})
	mux.HandleFunc("GET /api/v1/deploys", s.guard(read, s.listDeploys))
	mux.HandleFunc("GET /api/v1/deploys/{id}", s.guard(read, s.getDeploy))
	mux.HandleFunc("GET /api/v1/deploys/{id}/events", s.guard(read, s.streamEvents))
	mux.HandleFunc("POST /api/v1/deploys", s.guard(ingest, s.createDeploy))
	mux.HandleFunc("POST /api/v1/deploys/{id}/events", s.guard(ingest, s.postEvents))
	mux.HandleFunc("POST /api/v1/deploys/{id}/label", s.guard(label, s.labelDeploy))
	mux.HandleFunc("GET /api/v1/services", s.guard(read, s.listServices))
	mux.HandleFunc("GET /api/v1/services/{service}/dora", s.guard(read, s.serviceDORA))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", "no such API: %s %s (see /api/v1/openapi.json)", r.Method, r.URL.Path)
	})
}

// deployJSON is a deploy as the API lists it; the names are the report's.
type deployJSON struct {
	ID        string         `json:"id"`
	Verdict   string         `json:"verdict"`
	Reason    string         `json:"reason"`
	Source    string         `json:"source"`
	Deploy    deployIdentity `json:"deploy"`
	Namespace string         `json:"namespace,omitempty"`
	Kind      string         `json:"kind,omitempty"`
	Workload  string         `json:"workload,omitempty"`
	// DetectedAt and EndedAt are null until then.
	DetectedAt *time.Time   `json:"detected_at"`
	EndedAt    *time.Time   `json:"ended_at"`
	Rollback   rollbackJSON `json:"rollback"`
}

type deployIdentity struct {
	Service         string     `json:"service"`
	Environment     string     `json:"environment"`
	Version         string     `json:"version"`
	PreviousVersion string     `json:"previous_version"`
	StartedAt       time.Time  `json:"started_at"`
	TriggeredBy     string     `json:"triggered_by,omitempty"`
	CommitTime      *time.Time `json:"commit_time,omitempty"`
}

type rollbackJSON struct {
	Performed bool `json:"performed"`
	OK        bool `json:"ok"`
}

func deployOf(d store.Deploy) deployJSON {
	return deployJSON{
		ID: d.ID, Verdict: d.Verdict, Reason: d.Reason, Source: d.Source,
		Deploy: deployIdentity{Service: d.Service, Environment: d.Environment, Version: d.Version, PreviousVersion: d.PreviousVersion,
			StartedAt: d.StartedAt, TriggeredBy: d.TriggeredBy, CommitTime: d.CommitTime},
		Namespace: d.Namespace, Kind: d.Kind, Workload: d.Workload, DetectedAt: d.DetectedAt, EndedAt: d.EndedAt,
		Rollback: rollbackJSON{Performed: d.RolledBack, OK: d.RollbackOK},
	}
}

// verdicts are the values of the verdict filter.
var verdicts = []string{store.InProgress, store.Stable, store.Failed, store.Inconclusive}

// query reads a listing's filters.
func listQuery(r *http.Request) (store.Query, string, error) {
	v := r.URL.Query()
	q := store.Query{Service: v.Get("service"), Environment: v.Get("environment"), Namespace: v.Get("namespace"), Verdict: v.Get("verdict"), Cursor: v.Get("cursor")}
	if q.Verdict != "" && !slices.Contains(verdicts, q.Verdict) {
		return q, "verdict", fmt.Errorf("%q: want in_progress, stable, failed or inconclusive", q.Verdict)
	}
	for _, f := range []struct {
		name string
		to   *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if s := v.Get(f.name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return q, f.name, fmt.Errorf("%q: want an RFC 3339 time, e.g. 2026-11-25T10:00:00Z", s)
			}
			*f.to = t
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			return q, "limit", fmt.Errorf("%q: want 1 to 500", s)
		}
		q.Limit = n
	}
	return q, "", nil
}

func (s *Server) listDeploys(w http.ResponseWriter, r *http.Request, _ string) {
	q, field, err := listQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, field, "%v", err)
		return
	}
	page, err := s.store.ListDeploys(r.Context(), q)
	if errors.Is(err, sqlstore.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "cursor", "not a cursor this listing gave")
		return
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := struct {
		Deploys []deployJSON `json:"deploys"`
		Next    string       `json:"next,omitempty"`
	}{Deploys: []deployJSON{}, Next: page.Next}
	for _, d := range page.Deploys {
		out.Deploys = append(out.Deploys, deployOf(d))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) storeError(w http.ResponseWriter, err error) {
	s.log.Error("the store failed an API request", "err", err)
	writeError(w, http.StatusServiceUnavailable, "", "the store cannot answer now")
}

// validID reports whether a path id is one the store could have: 32 hex
// digits, or a key's characters; nothing that reaches a file or a query.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// deployDetail is GET /deploys/{id}: the summary, the report, the events
// and the labels.
type deployDetail struct {
	deployJSON
	Report json.RawMessage `json:"report"`
	Events []eventJSON     `json:"events"`
	Labels []labelJSON     `json:"labels"`
}

type eventJSON struct {
	Seq   int64           `json:"seq"`
	Event json.RawMessage `json:"event"`
}

type labelJSON struct {
	Label string    `json:"label"`
	At    time.Time `json:"at"`
	Note  string    `json:"note,omitempty"`
	By    string    `json:"by,omitempty"`
}

func (s *Server) getDeploy(w http.ResponseWriter, r *http.Request, _ string) {
	id := r.PathValue("id")
	if !validID(id) {
		writeError(w, http.StatusBadRequest, "id", "not a deploy id")
		return
	}
	d, err := s.store.Deploy(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "id", "no deploy %s", id)
		return
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	events, err := s.store.Events(r.Context(), id, 0)
	if err != nil {
		s.storeError(w, err)
		return
	}
	labels, err := s.store.Labels(r.Context(), []string{id})
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := deployDetail{deployJSON: deployOf(d), Report: json.RawMessage("null"), Events: []eventJSON{}, Labels: []labelJSON{}}
	if json.Valid(d.Report) && len(d.Report) > 0 {
		out.Report = d.Report
	}
	for _, e := range events {
		out.Events = append(out.Events, eventJSON{Seq: e.Seq, Event: e.Data})
	}
	for _, l := range labels[id] {
		out.Labels = append(out.Labels, labelJSON{Label: l.Label, At: l.At, Note: l.Note, By: l.Who})
	}
	writeJSON(w, http.StatusOK, out)
}

// decodeBody reads a JSON body strictly (unknown fields, trailing data
// and oversize are errors) and names the field that is wrong.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "", "want Content-Type: application/json, not %q", ct)
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON value")
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "", "the body is larger than %d bytes", tooBig.Limit)
	case errors.As(err, &syntax):
		writeError(w, http.StatusBadRequest, "", "malformed JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		writeError(w, http.StatusBadRequest, typ.Field, "want %s, got %s", typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		writeError(w, http.StatusBadRequest, field, "unknown field")
	case errors.Is(err, io.ErrUnexpectedEOF):
		writeError(w, http.StatusBadRequest, "", "malformed JSON: the body ends in the middle of a value")
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "", "the body is empty")
	default:
		writeError(w, http.StatusBadRequest, "", "%v", err)
	}
	return false
}

// createRequest is POST /deploys: a deploy a CLI watches.
type createRequest struct {
	// Key identifies the watch, so that a retried request records it once.
	Key       string         `json:"key"`
	Deploy    deployIdentity `json:"deploy"`
	Namespace string         `json:"namespace"`
	Kind      string         `json:"kind"`
	Workload  string         `json:"workload"`
}

func (s *Server) createDeploy(w http.ResponseWriter, r *http.Request, who string) {
	var req createRequest
	if !decodeBody(w, r, maxBody, &req) {
		return
	}
	d := req.Deploy
	switch {
	case !validID(req.Key):
		writeError(w, http.StatusBadRequest, "key", "required: up to 64 letters, digits, - and _ that identify the watch")
		return
	case strings.TrimSpace(d.Service) == "" || len(d.Service) > 200:
		writeError(w, http.StatusBadRequest, "deploy.service", "required, at most 200 characters")
		return
	case d.StartedAt.IsZero():
		writeError(w, http.StatusBadRequest, "deploy.started_at", "required: an RFC 3339 time")
		return
	}
	for field, v := range map[string]string{"deploy.environment": d.Environment, "deploy.version": d.Version, "deploy.previous_version": d.PreviousVersion,
		"deploy.triggered_by": d.TriggeredBy, "namespace": req.Namespace, "kind": req.Kind, "workload": req.Workload} {
		if len(v) > 500 {
			writeError(w, http.StatusBadRequest, field, "at most 500 characters")
			return
		}
	}
	stored, created, err := s.store.CreateDeploy(r.Context(), store.Deploy{
		Key: "cli/" + req.Key, Source: "cli", Service: d.Service, Environment: d.Environment, Namespace: req.Namespace, Kind: req.Kind,
		Workload: req.Workload, Version: d.Version, PreviousVersion: d.PreviousVersion, TriggeredBy: d.TriggeredBy,
		StartedAt: d.StartedAt, CommitTime: d.CommitTime, Owner: who,
	})
	if err != nil {
		s.storeError(w, err)
		return
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	writeJSON(w, status, struct {
		ID      string `json:"id"`
		Created bool   `json:"created"`
	}{stored.ID, created})
}

// eventsRequest is POST /deploys/{id}/events: a batch of a CLI watch's
// events, numbered by the CLI, and its report so far.
type eventsRequest struct {
	Events []ingestEvent    `json:"events"`
	Report *json.RawMessage `json:"report"`
}

type ingestEvent struct {
	Seq   int64           `json:"seq"`
	Event json.RawMessage `json:"event"`
}

func (s *Server) postEvents(w http.ResponseWriter, r *http.Request, _ string) {
	id := r.PathValue("id")
	if !validID(id) {
		writeError(w, http.StatusBadRequest, "id", "not a deploy id")
		return
	}
	var req eventsRequest
	if !decodeBody(w, r, maxEventsBody, &req) {
		return
	}
	d, err := s.store.Deploy(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "id", "no deploy %s", id)
		return
	case err != nil:
		s.storeError(w, err)
		return
	case d.Source != "cli":
		writeError(w, http.StatusConflict, "id", "deploy %s is watched by serve itself: its events are not taken from outside", id)
		return
	}
	var events []store.Event
	for i, ie := range req.Events {
		field := fmt.Sprintf("events[%d]", i)
		if ie.Seq < 1 {
			writeError(w, http.StatusBadRequest, field+".seq", "required: the event's number, from 1")
			return
		}
		var e watch.Event
		dec := json.NewDecoder(bytes.NewReader(ie.Event))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			writeError(w, http.StatusBadRequest, field+".event", "not an event of deploywatch --output json: %v", err)
			return
		}
		if !knownKind(e.Kind) {
			writeError(w, http.StatusBadRequest, field+".event.event", "unknown event %q", e.Kind)
			return
		}
		if e.Time.IsZero() {
			writeError(w, http.StatusBadRequest, field+".event.time", "required")
			return
		}
		data, err := json.Marshal(e)
		if err != nil {
			writeError(w, http.StatusBadRequest, field+".event", "%v", err)
			return
		}
		events = append(events, store.Event{Seq: ie.Seq, Time: e.Time, Kind: string(e.Kind), Data: data})
	}
	var progress *store.Progress
	if req.Report != nil {
		var rep watch.Report
		dec := json.NewDecoder(bytes.NewReader(*req.Report))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rep); err != nil {
			writeError(w, http.StatusBadRequest, "report", "not a deploywatch report: %v", err)
			return
		}
		if !rep.Verdict.Ended() && rep.Verdict != watch.InProgress {
			writeError(w, http.StatusBadRequest, "report.verdict", "%q: want in_progress, stable, failed or inconclusive", rep.Verdict)
			return
		}
		p, err := progressOfReport(&rep)
		if err != nil {
			writeError(w, http.StatusBadRequest, "report", "%v", err)
			return
		}
		progress = &p
	}
	if err := s.store.PutEvents(r.Context(), id, events); err != nil {
		s.storeError(w, err)
		return
	}
	if progress != nil {
		if err := s.store.Checkpoint(r.Context(), id, *progress); err != nil {
			s.storeError(w, err)
			return
		}
	}
	s.hub.notify(id)
	w.WriteHeader(http.StatusNoContent)
}

func knownKind(k event.Kind) bool {
	switch k {
	case event.Started, event.Baseline, event.PhaseStarted, event.PhaseEnded, event.Progress, event.Measured, event.Breached,
		event.Note, event.Resumed, event.RollbackStarted, event.RollbackDone, event.RollbackFailed, event.Verdict, event.HookOutput:
		return true
	}
	return false
}

// progressOfReport is the store's record of a report a CLI sent.
func progressOfReport(r *watch.Report) (store.Progress, error) {
	report, err := r.Encode()
	if err != nil {
		return store.Progress{}, err
	}
	p := store.Progress{Verdict: string(r.Verdict), Reason: r.Reason, PreviousVersion: r.Deploy.PreviousVersion, DetectedAt: r.DetectedAt, Report: report}
	if r.Verdict.Ended() {
		end := r.EndedAt
		p.EndedAt = &end
	}
	if rb := r.Rollback; rb != nil {
		p.RolledBack, p.RollbackOK = rb.Performed, rb.OK
	}
	return p, nil
}

// labelRequest is POST /deploys/{id}/label.
type labelRequest struct {
	Label string     `json:"label"`
	At    *time.Time `json:"at"`
	Note  string     `json:"note"`
}

func (s *Server) labelDeploy(w http.ResponseWriter, r *http.Request, who string) {
	id := r.PathValue("id")
	if !validID(id) {
		writeError(w, http.StatusBadRequest, "id", "not a deploy id")
		return
	}
	var req labelRequest
	if !decodeBody(w, r, maxBody, &req) {
		return
	}
	switch {
	case !slices.Contains(store.Labels, req.Label):
		writeError(w, http.StatusBadRequest, "label", "%q: want false_rollback, missed_regression or incident", req.Label)
		return
	case req.Label == store.LabelIncident && req.At == nil:
		writeError(w, http.StatusBadRequest, "at", "required for an incident: when it began (RFC 3339)")
		return
	case len(req.Note) > 1000:
		writeError(w, http.StatusBadRequest, "note", "at most 1000 characters")
		return
	}
	at := time.Now()
	if req.At != nil {
		at = *req.At
	}
	err := s.store.AddLabel(r.Context(), store.Label{DeployID: id, Label: req.Label, At: at, Note: req.Note, Who: who})
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "id", "no deploy %s", id)
		return
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, labelJSON{Label: req.Label, At: at, Note: req.Note, By: who})
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request, _ string) {
	svcs, err := s.store.Services(r.Context())
	if err != nil {
		s.storeError(w, err)
		return
	}
	type serviceJSON struct {
		Service      string    `json:"service"`
		Environments []string  `json:"environments"`
		Deploys      int       `json:"deploys"`
		LastDeploy   time.Time `json:"last_deploy"`
	}
	out := struct {
		Services []serviceJSON `json:"services"`
	}{Services: []serviceJSON{}}
	for _, svc := range svcs {
		envs := svc.Environments
		if envs == nil {
			envs = []string{}
		}
		out.Services = append(out.Services, serviceJSON{Service: svc.Name, Environments: envs, Deploys: svc.Deploys, LastDeploy: svc.LastDeploy})
	}
	writeJSON(w, http.StatusOK, out)
}

// maxDORADeploys bounds the history a DORA report reads.
const maxDORADeploys = 20000

// history reads a service's deploys that may matter to a window: those
// that started since a little before it.
func (s *Server) history(ctx context.Context, service, environment string, from time.Time) ([]dora.Deploy, error) {
	q := store.Query{Service: service, Environment: environment, Since: from.Add(-30 * 24 * time.Hour), Limit: 500}
	var all []store.Deploy
	for {
		page, err := s.store.ListDeploys(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Deploys...)
		if page.Next == "" || len(all) >= maxDORADeploys {
			break
		}
		q.Cursor = page.Next
	}
	ids := make([]string, len(all))
	for i, d := range all {
		ids[i] = d.ID
	}
	labels, err := s.store.Labels(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]dora.Deploy, 0, len(all))
	for _, d := range all {
		dd := dora.Deploy{ID: d.ID, Service: d.Service, Environment: d.Environment, Version: d.Version, PreviousVersion: d.PreviousVersion, Verdict: d.Verdict,
			StartedAt: d.StartedAt, DetectedAt: d.DetectedAt, RolledBack: d.RolledBack, CommitTime: d.CommitTime}
		if d.EndedAt != nil {
			dd.EndedAt = *d.EndedAt
		}
		for _, l := range labels[d.ID] {
			dd.Labels = append(dd.Labels, dora.Label{Name: l.Label, At: l.At})
		}
		out = append(out, dd)
	}
	return out, nil
}

// doraJSON is GET /services/{service}/dora. Unknown figures are null.
type doraJSON struct {
	Service     string       `json:"service"`
	Environment string       `json:"environment,omitempty"`
	Window      string       `json:"window"`
	From        time.Time    `json:"from"`
	To          time.Time    `json:"to"`
	Deploys     int          `json:"deploys"`
	BandsYear   int          `json:"bands_year"`
	Frequency   figureJSON   `json:"deployment_frequency"`
	LeadTime    figureJSON   `json:"lead_time"`
	Failure     figureJSON   `json:"change_failure_rate"`
	Recovery    figureJSON   `json:"recovery_time"`
	Weeks       []weekJSON   `json:"weeks"`
	Judge       judgeJSON    `json:"judge"`
	Units       doraUnitJSON `json:"units"`
}

type doraUnitJSON struct {
	Frequency string `json:"deployment_frequency"`
	LeadTime  string `json:"lead_time"`
	Failure   string `json:"change_failure_rate"`
	Recovery  string `json:"recovery_time"`
}

type figureJSON struct {
	Value   *float64 `json:"value"`
	Samples int      `json:"samples"`
	Band    string   `json:"band,omitempty"`
}

type weekJSON struct {
	Start             time.Time `json:"start"`
	Deploys           int       `json:"deploys"`
	Failed            int       `json:"failed"`
	ChangeFailureRate *float64  `json:"change_failure_rate"`
	LeadTime          *float64  `json:"lead_time_seconds"`
	RecoveryTime      *float64  `json:"recovery_time_seconds"`
}

type judgeJSON struct {
	Failed            int       `json:"failed"`
	FalseRollbacks    []string  `json:"false_rollbacks"`
	Stable            int       `json:"stable"`
	Missed            []string  `json:"missed_regressions"`
	Inconclusive      int       `json:"inconclusive"`
	InconclusiveShare *float64  `json:"inconclusive_share"`
	Precision         *float64  `json:"precision"`
	Recall            *float64  `json:"recall"`
	Detection         []float64 `json:"detection_seconds"`
}

func num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func figure(f dora.Figure) figureJSON {
	return figureJSON{Value: num(f.Value), Samples: f.Samples, Band: f.Band}
}

// doraReport computes a service's report over a window ending now.
func (s *Server) doraReport(ctx context.Context, service, environment string, window time.Duration) (dora.Report, error) {
	to := time.Now()
	hist, err := s.history(ctx, service, environment, to.Add(-window))
	if err != nil {
		return dora.Report{}, err
	}
	return dora.Compute(hist, dora.Options{From: to.Add(-window), To: to, MissedWithin: s.cfg.Audit.MissedWithin.D()}), nil
}

func (s *Server) serviceDORA(w http.ResponseWriter, r *http.Request, _ string) {
	service := r.PathValue("service")
	if service == "" || len(service) > 200 {
		writeError(w, http.StatusBadRequest, "service", "not a service name")
		return
	}
	window := 30 * 24 * time.Hour
	if v := r.URL.Query().Get("window"); v != "" {
		d, err := config.ParseDuration(v)
		if err != nil || d < time.Hour || d > 366*24*time.Hour {
			writeError(w, http.StatusBadRequest, "window", "%q: want a duration from 1h to 366d, e.g. 30d", v)
			return
		}
		window = d
	}
	env := r.URL.Query().Get("environment")
	rep, err := s.doraReport(r.Context(), service, env, window)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, doraOf(service, env, window, rep))
}

func doraOf(service, env string, window time.Duration, rep dora.Report) doraJSON {
	out := doraJSON{Service: service, Environment: env, Window: config.FormatDuration(window), From: rep.From, To: rep.To,
		Deploys: rep.Deploys, BandsYear: dora.BandsYear,
		Frequency: figure(rep.Frequency), LeadTime: figure(rep.LeadTime), Failure: figure(rep.ChangeFailureRate), Recovery: figure(rep.RecoveryTime),
		Weeks: []weekJSON{},
		Units: doraUnitJSON{Frequency: "deploys per day", LeadTime: "seconds", Failure: "ratio", Recovery: "seconds"},
		Judge: judgeJSON{Failed: rep.Judge.Failed, FalseRollbacks: nonNil(rep.Judge.FalseRollbacks), Stable: rep.Judge.Stable,
			Missed: nonNil(rep.Judge.Missed), Inconclusive: rep.Judge.Inconclusive, InconclusiveShare: num(rep.Judge.InconclusiveShare),
			Precision: num(rep.Judge.Precision), Recall: num(rep.Judge.Recall), Detection: rep.Judge.Detection}}
	if out.Judge.Detection == nil {
		out.Judge.Detection = []float64{}
	}
	for _, wk := range rep.Weeks {
		out.Weeks = append(out.Weeks, weekJSON{Start: wk.Start, Deploys: wk.Deploys, Failed: wk.Failed,
			ChangeFailureRate: num(wk.ChangeFailureRate), LeadTime: num(wk.LeadTime), RecoveryTime: num(wk.RecoveryTime)})
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
