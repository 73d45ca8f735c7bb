// Package memstore is the bounded in-memory series store the rule engine
// evaluates: the agent's own registry, gathered every interval, kept for as
// long as the loaded rules read each series (a Retention the rules package
// derives from the rule expressions). It implements storage.Queryable for
// the promql engine. It knows nothing of rules: the engine (package rules)
// feeds it and queries it.
package memstore

import (
	"context"
	"encoding/binary"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// LookbackDelta is how long a series' last sample stays current, as in
// Prometheus. The store keeps it on top of the rules' longest range.
const LookbackDelta = 5 * time.Minute

// Retention says how far back the rules read each series.
type Retention interface {
	// Keep is how far back the series of lset is read; 0 when only its
	// newest sample is (or none).
	Keep(lset labels.Labels) time.Duration
	// Longest is the longest Keep of any series.
	Longest() time.Duration
	// KeepsAll reports that the rules may read any series (a template
	// calling query with a computed string): every series is then kept for
	// Longest, plus the margin.
	KeepsAll() bool
}

// window keeps every series for the same time: the store's retention
// before the rules set theirs.
type window time.Duration

func (w window) Keep(labels.Labels) time.Duration { return time.Duration(w) }
func (w window) Longest() time.Duration           { return time.Duration(w) }
func (w window) KeepsAll() bool                   { return true }

// DefaultMaxSeries caps the store when New's maxSeries is zero. A host
// agent with the shipped configuration exports a few hundred series; the
// cap only guards against a label explosion (a log metric keyed by a
// request path, say) eating the host's memory.
const DefaultMaxSeries = 20000

// sample is one float sample; 16 bytes, the store's unit of memory.
type sample struct {
	t int64
	v float64
}

// memSeries is one series' samples, oldest first. Samples are appended
// and trimmed by the gather loop, which is also the only one to run
// queries (Ingest, then Evaluate), so a querier's view of the slice stays
// valid for the query after the lock is released.
type memSeries struct {
	lset    labels.Labels
	samples []sample
	// keep is how far back (ms) the rules read this series, 0 when they
	// read only its newest sample; see Retention.
	keep int64
	// seen is the last append round that carried this series; a series
	// missing from a round gets a staleness marker, as Prometheus writes
	// one when a target stops exporting a series.
	seen uint64
	// family is the metric family the series was gathered in ("" for
	// recorded series).
	family string
	// hash is lset.Hash(); gatherKey the series' key in Store.gathered
	// (0 for recorded series).
	hash, gatherKey uint64
}

// Store is the bounded in-memory series store the rules evaluate: the
// agent's own registry, gathered every interval. Each series keeps what the
// loaded rules read of it (Retention): the window of a range selector that
// selects it, and otherwise its newest sample only. It implements
// storage.Queryable for the promql engine. No WAL, no compaction: what it
// loses in a restart the window refills.
type Store struct {
	mu     sync.RWMutex
	series map[uint64]*memSeries
	// byName indexes series by metric name: every selector of a rule
	// names its metric, so a query touches only that metric's series.
	byName map[string]map[uint64]*memSeries
	// gathered finds a gathered series from the exposition's fields.
	gathered map[uint64]*memSeries
	// families holds the last round in which each metric family came.
	families map[string]uint64
	// retention is what the rules read; margin is added to the history
	// of series read over a range, so that a late gather never leaves a
	// range one sample short. forever keeps every sample (unit tests).
	retention Retention
	margin    time.Duration
	forever   bool
	maxSeries int
	round     uint64
	dropped   uint64
	samples   int
}

// New returns a store keeping keep of samples of every series, for
// at most maxSeries series (DefaultMaxSeries when 0); SetRetention then
// narrows it to what rules read. A keep of 0 keeps everything, which
// only the rule unit tests want.
func New(keep time.Duration, maxSeries int) *Store {
	if maxSeries <= 0 {
		maxSeries = DefaultMaxSeries
	}
	return &Store{
		series: map[uint64]*memSeries{}, byName: map[string]map[uint64]*memSeries{}, gathered: map[uint64]*memSeries{}, families: map[string]uint64{},
		retention: window(keep), forever: keep <= 0, maxSeries: maxSeries,
	}
}

// SetRetention makes the store keep what r reads, plus margin for series
// read over a range (after a reload changed the rules). Series already
// held are trimmed at the next append.
func (s *Store) SetRetention(r Retention, margin time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retention, s.margin, s.forever = r, margin, false
	for _, ms := range s.series {
		ms.keep = s.keepLocked(ms.lset)
	}
}

// keepLocked is how long (ms) the series of lset is kept.
func (s *Store) keepLocked(lset labels.Labels) int64 {
	back := s.retention.Keep(lset)
	if back <= 0 {
		return 0
	}
	return (back + s.margin).Milliseconds()
}

// Window returns the longest history the store keeps of a series.
func (s *Store) Window() time.Duration {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.retention.Longest() <= 0 {
		return 0
	}
	return s.retention.Longest() + s.margin
}

// Stats describes the store for its metrics.
type Stats struct {
	Series, Samples int
	// Dropped counts new series refused because the store was full.
	Dropped uint64
	// MaxSeries is the cap on series.
	MaxSeries int
}

// Stats returns the current size of the store.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Stats{Series: len(s.series), Samples: s.samples, Dropped: s.dropped, MaxSeries: s.maxSeries}
}

// AppendFamilies adds one gathered registry at ts, converting each family
// the way Prometheus' text-format scrape does (histograms and summaries
// become _bucket/_sum/_count and quantile series). Series the previous
// round had and this one lacks get a staleness marker, and samples no rule
// reads any more are dropped.
func (s *Store) AppendFamilies(ts time.Time, mfs []*dto.MetricFamily) {
	t := ts.UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.round++
	a := gatherAppender{s: s, t: t, b: labels.NewScratchBuilder(8)}
	for _, mf := range mfs {
		name := mf.GetName()
		a.family = name
		s.families[name] = s.round
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				a.add(name, m, m.GetCounter().GetValue(), "", 0)
			case dto.MetricType_GAUGE:
				a.add(name, m, m.GetGauge().GetValue(), "", 0)
			case dto.MetricType_UNTYPED:
				a.add(name, m, m.GetUntyped().GetValue(), "", 0)
			case dto.MetricType_SUMMARY:
				sm := m.GetSummary()
				for _, q := range sm.GetQuantile() {
					a.add(name, m, q.GetValue(), model.QuantileLabel, q.GetQuantile())
				}
				a.add(name+"_sum", m, sm.GetSampleSum(), "", 0)
				a.add(name+"_count", m, float64(sm.GetSampleCount()), "", 0)
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				inf := false
				for _, bk := range h.GetBucket() {
					if math.IsInf(bk.GetUpperBound(), 1) {
						inf = true
					}
					a.add(name+"_bucket", m, float64(bk.GetCumulativeCount()), model.BucketLabel, bk.GetUpperBound())
				}
				if !inf {
					a.add(name+"_bucket", m, float64(h.GetSampleCount()), model.BucketLabel, math.Inf(1))
				}
				a.add(name+"_sum", m, h.GetSampleSum(), "", 0)
				a.add(name+"_count", m, float64(h.GetSampleCount()), "", 0)
			}
		}
	}
	s.sweepLocked(t, true)
}

// gatherAppender appends one gather. Series are found through a hash of
// the exposition's own fields, so that a known series costs no label
// building or float formatting.
type gatherAppender struct {
	s      *Store
	t      int64
	family string
	b      labels.ScratchBuilder
	d      xxhash.Digest
}

func (a *gatherAppender) add(name string, m *dto.Metric, v float64, extraName string, extraVal float64) {
	a.d.Reset()
	_, _ = a.d.WriteString(name)
	for _, lp := range m.GetLabel() {
		_, _ = a.d.WriteString("\xff" + lp.GetName() + "\xfe" + lp.GetValue())
	}
	if extraName != "" {
		var buf [8]byte
		binary.LittleEndian.PutUint64(buf[:], math.Float64bits(extraVal))
		_, _ = a.d.WriteString("\xff" + extraName + "\xfe")
		_, _ = a.d.Write(buf[:])
	}
	key := a.d.Sum64()
	if ms, ok := a.s.gathered[key]; ok && ms.sameAs(name, m, extraName) {
		ms.seen = a.s.round
		a.s.addSample(ms, a.t, v)
		return
	}
	a.b.Reset()
	a.b.Add(model.MetricNameLabel, name)
	for _, lp := range m.GetLabel() {
		a.b.Add(lp.GetName(), lp.GetValue())
	}
	if extraName != "" {
		a.b.Add(extraName, formatFloat(extraVal))
	}
	a.b.Sort()
	ms := a.s.seriesLocked(a.b.Labels())
	if ms == nil {
		return
	}
	ms.seen = a.s.round
	ms.family = a.family
	if ms.gatherKey == 0 {
		ms.gatherKey = key
		a.s.gathered[key] = ms
	}
	a.s.addSample(ms, a.t, v)
}

// sameAs guards the gather cache against a hash collision.
func (ms *memSeries) sameAs(name string, m *dto.Metric, extraName string) bool {
	n := 1 + len(m.GetLabel())
	if extraName != "" {
		n++
	}
	if ms.lset.Len() != n || ms.lset.Get(model.MetricNameLabel) != name {
		return false
	}
	for _, lp := range m.GetLabel() {
		if ms.lset.Get(lp.GetName()) != lp.GetValue() {
			return false
		}
	}
	return extraName == "" || ms.lset.Has(extraName)
}

// Append adds one sample (rule unit tests and recording rules). A series
// appended this way is never marked stale by AppendFamilies.
func (s *Store) Append(lset labels.Labels, ts time.Time, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.seriesLocked(lset)
	if ms == nil {
		return
	}
	// Recorded series are not gathered; they stay until they age out.
	ms.seen = math.MaxUint64
	s.addSample(ms, ts.UnixMilli(), v)
}

// seriesLocked returns the series of lset, creating it, or nil when the
// store is full (the drop is counted).
func (s *Store) seriesLocked(lset labels.Labels) *memSeries {
	h := lset.Hash()
	if ms, ok := s.series[h]; ok {
		return ms
	}
	if len(s.series) >= s.maxSeries {
		s.dropped++
		return nil
	}
	ms := &memSeries{lset: lset, hash: h, keep: s.keepLocked(lset)}
	s.series[h] = ms
	name := lset.Get(model.MetricNameLabel)
	if s.byName[name] == nil {
		s.byName[name] = map[uint64]*memSeries{}
	}
	s.byName[name][h] = ms
	return ms
}

func (s *Store) deleteLocked(ms *memSeries) {
	delete(s.series, ms.hash)
	name := ms.lset.Get(model.MetricNameLabel)
	delete(s.byName[name], ms.hash)
	if len(s.byName[name]) == 0 {
		delete(s.byName, name)
	}
	if ms.gatherKey != 0 {
		delete(s.gathered, ms.gatherKey)
	}
}

func (s *Store) addSample(ms *memSeries, t int64, v float64) {
	if n := len(ms.samples); n > 0 && ms.samples[n-1].t >= t {
		if ms.samples[n-1].t == t {
			ms.samples[n-1].v = v
		}
		return // out of order: Prometheus would reject it too
	}
	s.push(ms, sample{t, v})
}

// push appends one sample. Growth is by an eighth, not append's default
// (up to double), and copies only live samples: the window's samples are
// most of the store's memory, and in steady state every series is full.
func (s *Store) push(ms *memSeries, x sample) {
	if len(ms.samples) == cap(ms.samples) {
		n := len(ms.samples)
		grown := make([]sample, n, n+max(n/8, 4))
		copy(grown, ms.samples)
		ms.samples = grown
	}
	ms.samples = append(ms.samples, x)
	s.samples++
}

// missing reports whether a gathered series is gone: absent from this
// round while its family was present (a label set that ended), or absent
// two rounds running. A whole family missing once is more likely a
// collector that timed out than one removed, and marking its series stale
// would end their alerts and restart their `for` clocks.
func (s *Store) missing(ms *memSeries) bool {
	if ms.seen == s.round || ms.seen == math.MaxUint64 {
		return false
	}
	return s.families[ms.family] == s.round || ms.seen+1 < s.round
}

// sweepLocked marks series missing from this gather stale (when gather is
// set) and drops what no rule reads any more, in one pass: of each series,
// the samples older than its keep except the newest of them (which an
// instant lookup at the oldest time read still finds), and series with
// nothing left that a query could see. Arrays are compacted in place, so
// that a steady store allocates nothing; one mostly dead (the series went
// quiet, or the rules changed) is reallocated smaller, so that memory does
// not grow with uptime.
func (s *Store) sweepLocked(now int64, gather bool) {
	for f, r := range s.families {
		if r+2 < s.round {
			delete(s.families, f)
		}
	}
	lookback := LookbackDelta.Milliseconds()
	for _, ms := range s.series {
		if gather && s.missing(ms) && len(ms.samples) > 0 && !value.IsStaleNaN(ms.samples[len(ms.samples)-1].v) {
			s.push(ms, sample{now, math.Float64frombits(value.StaleNaN)})
		}
		if s.forever || len(ms.samples) == 0 {
			continue
		}
		keep := ms.keep
		if s.retention.KeepsAll() {
			keep = (s.retention.Longest() + s.margin).Milliseconds()
		}
		cutoff := now - keep
		// The first sample the rules read over a range, and before it the
		// one an instant lookup at the cutoff finds, unless that one is
		// beyond the lookback delta too.
		i := sort.Search(len(ms.samples), func(i int) bool { return ms.samples[i].t > cutoff })
		if i > 0 && ms.samples[i-1].t > cutoff-lookback {
			i--
		}
		if i == 0 {
			continue
		}
		s.samples -= i
		rest := ms.samples[i:]
		// A staleness marker with nothing left before it hides nothing.
		if len(rest) == 0 || (len(rest) == 1 && value.IsStaleNaN(rest[0].v)) {
			s.samples -= len(rest)
			s.deleteLocked(ms)
			continue
		}
		if cap(ms.samples) > 4*len(rest)+16 {
			ms.samples = append(make([]sample, 0, len(rest)+len(rest)/8+4), rest...)
		} else {
			ms.samples = ms.samples[:copy(ms.samples, rest)]
		}
	}
}

// Querier implements storage.Queryable.
// HasMetric reports whether the store holds a series named name.
func (s *Store) HasMetric(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byName[name]) > 0
}

func (s *Store) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{s: s, mint: mint, maxt: maxt}, nil
}

type querier struct {
	s          *Store
	mint, maxt int64
}

func (q *querier) Select(_ context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	q.s.mu.RLock()
	var out []*listSeries
	candidates := q.s.series
	for _, m := range ms {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			candidates = q.s.byName[m.Value]
			break
		}
	}
	for _, m := range candidates {
		if !Matches(m.lset, ms) {
			continue
		}
		lo := sort.Search(len(m.samples), func(i int) bool { return m.samples[i].t >= mint })
		hi := sort.Search(len(m.samples), func(i int) bool { return m.samples[i].t > maxt })
		if lo >= hi {
			continue
		}
		out = append(out, &listSeries{lset: m.lset, samples: m.samples[lo:hi:hi]})
	}
	q.s.mu.RUnlock()
	if sortSeries {
		slices.SortFunc(out, func(a, b *listSeries) int { return labels.Compare(a.lset, b.lset) })
	}
	return &seriesSet{list: out, i: -1}
}

// Matches reports whether l satisfies every matcher of ms.
func Matches(l labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(l.Get(m.Name)) {
			return false
		}
	}
	return true
}

func (q *querier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.collect(ms, func(lset labels.Labels, add func(string)) {
		if v := lset.Get(name); v != "" {
			add(v)
		}
	}), nil, nil
}

func (q *querier) LabelNames(_ context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.collect(ms, func(lset labels.Labels, add func(string)) {
		lset.Range(func(l labels.Label) { add(l.Name) })
	}), nil, nil
}

// collect returns, sorted and without duplicates, the strings pick adds
// for every series that ms select.
func (q *querier) collect(ms []*labels.Matcher, pick func(lset labels.Labels, add func(string))) []string {
	set := map[string]struct{}{}
	add := func(v string) { set[v] = struct{}{} }
	q.s.mu.RLock()
	for _, m := range q.s.series {
		if Matches(m.lset, ms) {
			pick(m.lset, add)
		}
	}
	q.s.mu.RUnlock()
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func (q *querier) Close() error { return nil }

type seriesSet struct {
	list []*listSeries
	i    int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.list) }
func (s *seriesSet) At() storage.Series                { return s.list[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

type listSeries struct {
	lset    labels.Labels
	samples []sample
}

func (l *listSeries) Labels() labels.Labels { return l.lset }

func (l *listSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	// Prometheus' list iterator over a view of our slice: Get returns a
	// pointer into the slice, so iterating allocates nothing per sample.
	return storage.NewListSeriesIterator(sampleView(l.samples))
}

// sampleView adapts a slice of samples to storage.Samples.
type sampleView []sample

func (v sampleView) Get(i int) chunks.Sample { return &v[i] }
func (v sampleView) Len() int                { return len(v) }

// The chunks.Sample methods of a float sample.
func (s *sample) T() int64                      { return s.t }
func (s *sample) ST() int64                     { return 0 }
func (s *sample) F() float64                    { return s.v }
func (s *sample) H() *histogram.Histogram       { return nil }
func (s *sample) FH() *histogram.FloatHistogram { return nil }
func (s *sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s *sample) Copy() chunks.Sample           { c := *s; return &c }

// formatFloat writes bucket bounds and quantiles as Prometheus' text
// exposition does ("0.5", "+Inf"), so that le="0.5" matches.
func formatFloat(f float64) string {
	return model.SampleValue(f).String()
}
