package smoke

import (
	"context"
	"errors"
	"io"
	"slices"
)

// Replayer sends a suite's requests again and again without judging the
// answers: synthetic traffic for a service too quiet to judge from its
// own. Only checks that stand alone are replayed: those that need no other
// check (after) and no captured value.
type Replayer struct {
	r      *run
	checks []*Check
}

// Replayer prepares the suite's standalone checks for replay.
func (s *Suite) Replayer(o Options) (*Replayer, error) {
	r, err := s.newRun(o)
	if err != nil {
		return nil, err
	}
	p := &Replayer{r: r}
	for i := range s.Checks {
		c := &s.Checks[i]
		if len(c.After) == 0 && !s.usesCaptures(c) {
			p.checks = append(p.checks, c)
		}
	}
	if len(p.checks) == 0 {
		return nil, errors.New("no check of the suite stands alone (each needs another check or a captured value): nothing to replay")
	}
	return p, nil
}

// usesCaptures reports whether a check's request uses a variable that is
// not from the environment (a value captured by another check).
func (s *Suite) usesCaptures(c *Check) bool {
	texts := []string{c.Path, c.Body}
	for _, v := range c.Headers {
		texts = append(texts, v)
	}
	for _, v := range s.Headers {
		texts = append(texts, v)
	}
	for _, t := range texts {
		for _, m := range varRE.FindAllStringSubmatch(t, -1) {
			if !slices.Contains(s.Env, m[1]) {
				return true
			}
		}
	}
	return false
}

// Len is how many requests are replayed in turn.
func (p *Replayer) Len() int { return len(p.checks) }

// Send sends the i-th standalone check's request (i modulo Len), with the
// extra header set, reads at most 1 MiB of the answer and returns its
// status. Errors never carry the environment's secret values.
func (p *Replayer) Send(ctx context.Context, i int, name, value string) (int, error) {
	c := p.checks[i%len(p.checks)]
	ctx, cancel := context.WithTimeout(ctx, c.Timeout.D())
	defer cancel()
	req, err := p.r.request(ctx, c)
	if err != nil {
		return 0, errors.New(p.r.redact(err.Error()))
	}
	req.Header.Set(name, value)
	req.Header.Set("User-Agent", "deploywatch-traffic")
	resp, err := p.r.noRedir.Do(req)
	if err != nil {
		return 0, errors.New(p.r.redact(err.Error()))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode, nil
}
