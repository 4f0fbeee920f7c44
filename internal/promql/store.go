package promql

import (
	"context"
	"errors"
	"math"
	"slices"
	"sort"
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// samplesPerChunk is how many samples a chunk holds before a new one is
// cut, as in Prometheus's head block: about 1.3 bytes per sample for
// regular scrapes once XOR-encoded.
const samplesPerChunk = 120

// ErrOutOfOrder is a sample older than the newest one of its series.
var ErrOutOfOrder = errors.New("sample out of order")

// Store is the embedded engine's in-memory time series store. Each series
// keeps its samples in Gorilla-compressed (XOR) chunks, the encoding of
// Prometheus's own head block; whole chunks older than the retention are
// dropped. It implements storage.Queryable, so Prometheus's PromQL engine
// reads it directly, and handles counter resets and extrapolation the way
// Prometheus does, because it is Prometheus's code doing it.
type Store struct {
	mu        sync.RWMutex
	series    map[uint64][]*memSeries
	retention int64 // milliseconds
	targets   map[string]*targetState
	numSeries int
}

type memSeries struct {
	lset   labels.Labels
	chunks []*memChunk
	app    chunkenc.Appender
	lastT  int64
}

type memChunk struct {
	c          *chunkenc.XORChunk
	minT, maxT int64
}

var _ storage.Queryable = (*Store)(nil)

// NewStore returns a store that keeps samples for retention milliseconds.
func NewStore(retentionMillis int64) *Store {
	return &Store{series: map[uint64][]*memSeries{}, retention: retentionMillis, targets: map[string]*targetState{}}
}

// getOrCreate finds the series of lset, creating it. The caller holds mu.
func (s *Store) getOrCreate(lset labels.Labels) *memSeries {
	h := lset.Hash()
	for _, ms := range s.series[h] {
		if labels.Equal(ms.lset, lset) {
			return ms
		}
	}
	ms := &memSeries{lset: lset, lastT: math.MinInt64}
	s.series[h] = append(s.series[h], ms)
	s.numSeries++
	return ms
}

// append adds one sample. The caller holds mu.
func (s *Store) append(lset labels.Labels, t int64, v float64) error {
	ms := s.getOrCreate(lset)
	if t <= ms.lastT {
		if t == ms.lastT {
			return nil // a repeated scrape timestamp: keep the first
		}
		return ErrOutOfOrder
	}
	head := len(ms.chunks) - 1
	if head < 0 || ms.chunks[head].c.NumSamples() >= samplesPerChunk {
		c := chunkenc.NewXORChunk()
		app, err := c.Appender()
		if err != nil {
			return err
		}
		ms.chunks = append(ms.chunks, &memChunk{c: c, minT: t})
		ms.app = app
		head++
	}
	ms.app.Append(0, t, v)
	ms.chunks[head].maxT = t
	ms.lastT = t
	// Drop whole chunks that left the retention window.
	minT := t - s.retention
	drop := 0
	for drop < len(ms.chunks)-1 && ms.chunks[drop].maxT < minT {
		drop++
	}
	if drop > 0 {
		ms.chunks = slices.Delete(ms.chunks, 0, drop)
	}
	return nil
}

// Append adds one sample to the series lset.
func (s *Store) Append(lset labels.Labels, t int64, v float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.append(lset, t, v)
}

// Compact forgets series whose newest sample is older than the retention
// at now (milliseconds), such as those of targets that went away.
func (s *Store) Compact(now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	minT := now - s.retention
	for h, list := range s.series {
		kept := list[:0]
		for _, ms := range list {
			if ms.lastT >= minT {
				kept = append(kept, ms)
			} else {
				s.numSeries--
			}
		}
		if len(kept) == 0 {
			delete(s.series, h)
		} else {
			s.series[h] = kept
		}
	}
}

// Stats reports the store's size: series, samples and the bytes their
// chunks hold.
func (s *Store) Stats() (series, samples, chunkBytes int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, list := range s.series {
		for _, ms := range list {
			for _, c := range ms.chunks {
				samples += c.c.NumSamples()
				chunkBytes += len(c.c.Bytes())
			}
		}
	}
	return s.numSeries, samples, chunkBytes
}

// Querier returns a querier over [mint, maxt].
func (s *Store) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{s: s, mint: mint, maxt: maxt}, nil
}

type querier struct {
	s          *Store
	mint, maxt int64
}

func matches(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

// Select copies the matching samples out under the read lock, so the
// returned series stay valid while scrapes keep appending.
func (q *querier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	q.s.mu.RLock()
	var out []storage.Series
	for _, list := range q.s.series {
		for _, ms2 := range list {
			if ctx.Err() != nil {
				q.s.mu.RUnlock()
				return storage.ErrSeriesSet(ctx.Err())
			}
			if !matches(ms2.lset, ms) {
				continue
			}
			if ls := ms2.samples(mint, maxt); ls != nil {
				out = append(out, ls)
			}
		}
	}
	q.s.mu.RUnlock()
	if sortSeries {
		sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels(), out[j].Labels()) < 0 })
	}
	return &seriesSet{list: out, i: -1}
}

// samples decodes the samples in [mint, maxt], or nil if there are none.
func (ms *memSeries) samples(mint, maxt int64) *listSeries {
	var ls *listSeries
	var it chunkenc.Iterator
	for _, c := range ms.chunks {
		if c.maxT < mint || c.minT > maxt {
			continue
		}
		it = c.c.Iterator(it)
		for typ := it.Seek(mint); typ == chunkenc.ValFloat; typ = it.Next() {
			t, v := it.At()
			if t > maxt {
				break
			}
			if ls == nil {
				ls = &listSeries{lset: ms.lset}
			}
			ls.samples = append(ls.samples, fSample{t, v})
		}
	}
	return ls
}

func (q *querier) LabelValues(ctx context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	q.s.mu.RLock()
	defer q.s.mu.RUnlock()
	set := map[string]struct{}{}
	for _, list := range q.s.series {
		for _, m := range list {
			if v := m.lset.Get(name); v != "" && matches(m.lset, ms) {
				set[v] = struct{}{}
			}
		}
	}
	return sortedKeys(set), nil, nil
}

func (q *querier) LabelNames(ctx context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	q.s.mu.RLock()
	defer q.s.mu.RUnlock()
	set := map[string]struct{}{}
	for _, list := range q.s.series {
		for _, m := range list {
			if matches(m.lset, ms) {
				m.lset.Range(func(l labels.Label) { set[l.Name] = struct{}{} })
			}
		}
	}
	return sortedKeys(set), nil, nil
}

func (q *querier) Close() error { return nil }

func sortedKeys(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type seriesSet struct {
	list []storage.Series
	i    int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.list) }
func (s *seriesSet) At() storage.Series                { return s.list[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// listSeries is a decoded copy of a series' samples; Prometheus's own
// list iterator walks it.
type listSeries struct {
	lset    labels.Labels
	samples floatSamples
}

func (l *listSeries) Labels() labels.Labels { return l.lset }

func (l *listSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return storage.NewListSeriesIterator(l.samples)
}

// floatSamples implements storage.Samples over a slice; Get hands out a
// pointer so that iterating does not allocate.
type floatSamples []fSample

func (f floatSamples) Get(i int) chunks.Sample { return &f[i] }
func (f floatSamples) Len() int                { return len(f) }

type fSample struct {
	t int64
	f float64
}

func (s *fSample) T() int64                      { return s.t }
func (s *fSample) ST() int64                     { return 0 }
func (s *fSample) F() float64                    { return s.f }
func (s *fSample) H() *histogram.Histogram       { return nil }
func (s *fSample) FH() *histogram.FloatHistogram { return nil }
func (s *fSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s *fSample) Copy() chunks.Sample           { c := *s; return &c }

// staleNaN is Prometheus's staleness marker: a series that stops being
// scraped gets one, so queries stop seeing it at once instead of for the
// 5-minute lookback.
var staleNaN = math.Float64frombits(value.StaleNaN)
