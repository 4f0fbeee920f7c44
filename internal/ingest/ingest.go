// Package ingest sends a CLI watch to a deploywatch serve, so that deploys
// done by pipelines join the history: the deploy at its start, every event
// as it happens, and the report as it grows. It never delays the watch: it
// queues (bounded), sends from its own goroutine with retries, and says at
// the end what it could not deliver.
package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/deploywatch/deploywatch/internal/event"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// Options configure a Client.
type Options struct {
	// URL is serve's base URL; the client adds /api/v1.
	URL string
	// Token is a bearer token with the ingest scope.
	Token string
	// Key identifies the watch to serve, the same across a resume.
	Key string
	// CommitTime is when the deployed commit was made, if known.
	CommitTime *time.Time
	// Timeout bounds each request. Default 5s.
	Timeout time.Duration
	// MaxQueue bounds the events kept while serve does not answer.
	// Default 10,000.
	MaxQueue int
	Client   *http.Client
}

// Client is a watch.Observer and watch.Checkpointer that ingests a watch.
type Client struct {
	o    Options
	base string

	mu      sync.Mutex
	id      string
	deploy  *watch.Deploy
	queue   []item
	report  []byte // the report so far, as JSON
	sent    []byte // the last report serve took
	lastSeq int64
	dropped int
	lastErr error
	wake    chan struct{}
	ctx     context.Context // ends requests when Close runs out of time
	stop    context.CancelFunc
	done    chan struct{}
	closing bool
}

// item is an event as serve takes it. Events and reports are encoded when
// they are handed over, in the watch's goroutine, so that the sender
// never reads what the engine goes on changing.
type item struct {
	Seq   int64           `json:"seq"`
	Event json.RawMessage `json:"event"`
}

var (
	_ watch.Observer     = (*Client)(nil)
	_ watch.Checkpointer = (*Client)(nil)
)

// New starts a client; Close ends it.
func New(o Options) (*Client, error) {
	base, err := APIBase(o.URL)
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = 10000
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	c := &Client{o: o, base: base,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	c.ctx, c.stop = context.WithCancel(context.Background())
	go c.run()
	return c, nil
}

// APIBase is the API's URL under serve's base URL.
func APIBase(serve string) (string, error) {
	u, err := url.Parse(serve)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("--server %q: want http(s)://host[:port][/prefix], without credentials (the token comes from --server-token-env)", serve)
	}
	return strings.TrimSuffix(u.String(), "/") + "/api/v1", nil
}

// Event queues an event; it never blocks. The event's time in
// nanoseconds, made strictly increasing, numbers it: a resumed watch goes
// on with higher numbers, and a retried batch is taken once.
func (c *Client) Event(e watch.Event) {
	if e.Kind == event.HookOutput {
		return
	}
	e.Report = nil // the report goes whole, beside the events
	data, err := json.Marshal(e)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.dropped++
		c.lastErr = fmt.Errorf("event %s: %w", e.Kind, err)
		return
	}
	if e.Deploy != nil {
		d := *e.Deploy
		c.deploy = &d
	}
	seq := max(e.Time.UnixNano(), c.lastSeq+1)
	c.lastSeq = seq
	if len(c.queue) >= c.o.MaxQueue {
		c.queue = c.queue[1:]
		c.dropped++
	}
	c.queue = append(c.queue, item{Seq: seq, Event: data})
	c.poke()
}

// Checkpoint takes the report so far.
func (c *Client) Checkpoint(s *watch.State) error {
	c.takeReport(s.Report)
	return nil
}

func (c *Client) takeReport(r *watch.Report) {
	data, err := json.Marshal(r)
	c.mu.Lock()
	if err != nil {
		c.lastErr = fmt.Errorf("the report: %w", err)
	} else {
		c.report = data
	}
	c.mu.Unlock()
	c.poke()
}

func (c *Client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Close hands over the final report and sends what is left, waiting at
// most within; it returns the delivery for the report.
func (c *Client) Close(final *watch.Report, within time.Duration) watch.Delivery {
	if final != nil {
		c.takeReport(final)
	}
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.poke()
	select {
	case <-c.done:
	case <-time.After(within):
		c.stop()
		<-c.done
	}
	c.stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	d := watch.Delivery{Sink: "server", Event: string(event.Verdict), OK: true}
	var missing []string
	if n := len(c.queue) + c.dropped; n > 0 {
		m := fmt.Sprintf("%d events", n)
		if c.dropped > 0 {
			m += fmt.Sprintf(" (%d past the queue's bound of %d)", c.dropped, c.o.MaxQueue)
		}
		missing = append(missing, m)
	}
	if c.report != nil && !sameBytes(c.sent, c.report) {
		missing = append(missing, "the report")
	}
	if c.id == "" {
		missing = append([]string{"the deploy"}, missing...)
	}
	if len(missing) > 0 {
		d.OK = false
		d.Error = "not delivered to " + c.o.URL + ": " + strings.Join(missing, ", ")
		if c.lastErr != nil {
			d.Error += " (" + c.lastErr.Error() + ")"
		}
	}
	return d
}

// run sends from its own goroutine: the deploy first, then events and
// the report, retrying with jittered backoff.
func (c *Client) run() {
	defer close(c.done)
	backoff := 250 * time.Millisecond
	for {
		ok, idle := c.send()
		c.mu.Lock()
		closing := c.closing
		c.mu.Unlock()
		if ok && idle && closing {
			return
		}
		wait := time.Duration(0)
		if !ok {
			wait = backoff + rand.N(backoff/2+1)
			backoff = min(2*backoff, 5*time.Second)
		} else {
			backoff = 250 * time.Millisecond
		}
		if ok && !idle {
			continue
		}
		var timer <-chan time.Time
		if wait > 0 {
			timer = time.After(wait)
		}
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
			if wait > 0 {
				select {
				case <-c.ctx.Done():
					return
				case <-timer:
				}
			}
		case <-timer:
		}
	}
}

// send makes one request; ok is false when it failed, idle when nothing
// is left to send.
func (c *Client) send() (ok, idle bool) {
	c.mu.Lock()
	id, dep := c.id, c.deploy
	batch := c.queue[:min(len(c.queue), 500)]
	rep := c.report
	pendingReport := rep != nil && !sameBytes(rep, c.sent)
	c.mu.Unlock()
	if id == "" {
		if dep == nil {
			return true, true // nothing to record the deploy with yet
		}
		newID, err := c.create(dep)
		c.setErr(err)
		if err != nil {
			return false, false
		}
		c.mu.Lock()
		c.id = newID
		c.mu.Unlock()
		return true, false
	}
	if len(batch) == 0 && !pendingReport {
		return true, true
	}
	body := struct {
		Events []item          `json:"events"`
		Report json.RawMessage `json:"report,omitempty"`
	}{Events: batch}
	if pendingReport {
		body.Report = rep
	}
	err := c.post("/deploys/"+id+"/events", body, nil)
	c.setErr(err)
	if err != nil {
		return false, false
	}
	c.mu.Lock()
	c.queue = c.queue[len(batch):]
	if pendingReport {
		c.sent = rep
	}
	idle = len(c.queue) == 0 && sameBytes(c.report, c.sent)
	c.mu.Unlock()
	return true, idle
}

// sameBytes reports whether a and b are one slice: a report is replaced,
// never changed, so identity tells whether serve has the newest.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func (c *Client) setErr(err error) {
	if err != nil && c.ctx.Err() != nil {
		return // Close ended the request: the error before says why
	}
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
}

func (c *Client) create(d *watch.Deploy) (string, error) {
	req := map[string]any{
		"key": c.o.Key,
		"deploy": map[string]any{
			"service": d.Service, "environment": d.Environment, "version": d.Version, "previous_version": d.PreviousVersion,
			"started_at": d.StartedAt, "triggered_by": d.TriggeredBy, "commit_time": c.o.CommitTime,
		},
	}
	if c.o.CommitTime == nil {
		delete(req["deploy"].(map[string]any), "commit_time")
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := c.post("/deploys", req, &out); err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", errors.New("serve gave no deploy id")
	}
	return out.ID, nil
}

// post sends JSON; a 4xx other than 408 and 429 is not worth retrying, but
// is retried anyway (bounded by Close): the watch's record matters more
// than one refused batch, and the error says why.
func (c *Client) post(path string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "deploywatch")
	if c.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.Token)
	}
	resp, err := c.o.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the delivery already
		}
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
			Field string `json:"field"`
		}
		_ = json.Unmarshal(b, &e)
		msg := e.Error
		if e.Field != "" {
			msg = e.Field + ": " + msg
		}
		return fmt.Errorf("serve answered %d: %s", resp.StatusCode, msg)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
