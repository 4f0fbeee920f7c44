package promql

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// ScrapeAccept is the Accept header a scraper sends: the two text formats
// this store ingests, OpenMetrics preferred, as Prometheus does.
const ScrapeAccept = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"

// targetState remembers what a target exposed at its last scrape, so the
// series it stops exposing get a staleness marker.
type targetState struct {
	last map[uint64]labels.Labels
}

// Target identifies a scrape target: its job and instance, plus any other
// target labels. They are attached to every series it exposes.
type Target struct {
	Job, Instance string
	Labels        map[string]string
}

func (t Target) key() string { return t.Job + "\x00" + t.Instance }

func (t Target) labels() labels.Labels {
	m := map[string]string{"job": t.Job, "instance": t.Instance}
	maps.Copy(m, t.Labels)
	return labels.FromMap(m)
}

// Ingest stores one successful scrape of target taken at ts: every sample
// of body (Prometheus text or OpenMetrics, by contentType), the synthetic
// up, scrape_duration_seconds and scrape_samples_scraped series, and a
// staleness marker for every series the target exposed last time but not
// now. It returns how many samples the body held.
func (s *Store) Ingest(target Target, body []byte, contentType string, ts time.Time, took time.Duration) (int, error) {
	p, err := textparse.New(body, contentType, nil, textparse.ParserOptions{
		OpenMetricsSkipSTSeries: true,
		FallbackContentType:     "text/plain",
	})
	if p == nil {
		return 0, fmt.Errorf("unsupported content type %q: %w", contentType, err)
	}
	tl := target.labels()
	defaultT := ts.UnixMilli()
	type sample struct {
		lset labels.Labels
		t    int64
		v    float64
	}
	var batch []sample
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("parsing the exposition: %w", err)
		}
		if entry != textparse.EntrySeries {
			continue // HELP, TYPE, UNIT, comments; native histograms are not requested
		}
		_, tsp, v := p.Series()
		var lset labels.Labels
		p.Labels(&lset)
		t := defaultT
		if tsp != nil {
			t = *tsp
		}
		batch = append(batch, sample{mergeTargetLabels(lset, tl), t, v})
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.targets[target.key()]
	if st == nil {
		st = &targetState{last: map[uint64]labels.Labels{}}
		s.targets[target.key()] = st
	}
	seen := make(map[uint64]labels.Labels, len(batch))
	var appendErr error
	for _, smp := range batch {
		if err := s.append(smp.lset, smp.t, smp.v); err != nil && appendErr == nil {
			appendErr = fmt.Errorf("series %s: %w", smp.lset, err)
		}
		seen[smp.lset.Hash()] = smp.lset
	}
	s.markStale(st, seen, defaultT)
	st.last = seen
	s.appendReport(tl, defaultT, 1, took, len(batch))
	return len(batch), appendErr
}

// IngestFailure records a failed scrape: up is 0 and every series the
// target exposed goes stale, so queries stop seeing the old values.
func (s *Store) IngestFailure(target Target, ts time.Time, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := ts.UnixMilli()
	if st := s.targets[target.key()]; st != nil {
		s.markStale(st, nil, t)
		st.last = map[uint64]labels.Labels{}
	}
	s.appendReport(target.labels(), t, 0, took, 0)
}

func (s *Store) markStale(st *targetState, seen map[uint64]labels.Labels, t int64) {
	for h, lset := range st.last {
		if _, ok := seen[h]; !ok {
			_ = s.append(lset, t, staleNaN)
		}
	}
}

// appendReport writes the series Prometheus adds for every scrape.
func (s *Store) appendReport(tl labels.Labels, t int64, up float64, took time.Duration, samples int) {
	for _, r := range []struct {
		name string
		v    float64
	}{
		{"up", up},
		{"scrape_duration_seconds", took.Seconds()},
		{"scrape_samples_scraped", float64(samples)},
	} {
		b := labels.NewBuilder(tl)
		b.Set(labels.MetricName, r.name)
		_ = s.append(b.Labels(), t, r.v)
	}
}

// mergeTargetLabels attaches the target's labels. A scraped label that
// clashes with one of them is kept as exported_<name>, as Prometheus does
// with honor_labels: false.
func mergeTargetLabels(lset, target labels.Labels) labels.Labels {
	b := labels.NewBuilder(lset)
	target.Range(func(l labels.Label) {
		if v := lset.Get(l.Name); v != "" {
			b.Set("exported_"+l.Name, v)
		}
		b.Set(l.Name, l.Value)
	})
	return b.Labels()
}
