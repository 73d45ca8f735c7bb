package collectors

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Log-derived metrics in the spirit of mtail: a counter, gauge or
// histogram per matching line, valued and labelled from its submatches.

// logMetric is one log-derived metric of one source.
type logMetric struct {
	cfg      LogMetricConfig
	source   string
	m        *matcher
	valueIdx int   // submatch index of the value group, -1 for none
	labelIdx []int // submatch indexes of the label groups
	desc     *prometheus.Desc
	kind     uint8 // cfg.Type: kindCounter, kindGauge or kindHistogram

	// mu guards series and order against collect; the metrics of a
	// metricGroup share their group's, which observe's caller holds, so
	// that a line costs one lock for all of them.
	mu     *sync.Mutex
	series map[string]*logSeries
	order  []*logSeries
	key    []byte
	// The series of the previous line and its key: no map lookup for a
	// line with the same labels (or none).
	last    *logSeries
	lastKey []byte
	// short finds the series of a single label value of up to 7 bytes
	// (status codes, methods) by the value packed in a word: an open
	// addressing table of 16 slots hashed by a multiply, instead of
	// hashing the key for a map.
	short    [16]shortSeries
	nshort   int
	overflow atomic.Uint64
	badValue atomic.Uint64
}

type shortSeries struct {
	key uint64 // packWord of the label value
	s   *logSeries
}

// packWord packs the up to 7 bytes line[s:e] and their count into a word,
// distinct for distinct byte strings (and never 0 for a non-empty one);
// ok is false for longer ones.
func packWord(line []byte, s, e int) (uint64, bool) {
	n := e - s
	if n > 7 || n < 0 {
		return 0, false
	}
	var k uint64
	if s+8 <= len(line) {
		k = binary.LittleEndian.Uint64(line[s:s+8]) & (1<<(8*n) - 1)
	} else {
		for i, c := range line[s:e] {
			k |= uint64(c) << (8 * i)
		}
	}
	return k | uint64(n)<<56, true
}

// shortSlot is where key k's probe starts in logMetric.short.
func shortSlot(k uint64) int { return int(k * 0x9e3779b97f4a7c15 >> 60) }

// The metric types, decided once rather than by comparing cfg.Type's
// string on every line.
const (
	kindCounter = iota
	kindGauge
	kindHistogram
)

type logSeries struct {
	labels  []string // source first
	value   float64
	count   uint64
	buckets []uint64
}

func newLogMetric(source string, c LogMetricConfig) *logMetric {
	m := &logMetric{cfg: c, source: source, m: newMatcher(c.Regexp.Regexp), valueIdx: -1, series: map[string]*logSeries{}, mu: &sync.Mutex{}}
	if c.Value != "" {
		m.valueIdx = c.Regexp.SubexpIndex(c.Value)
	}
	for _, l := range c.Labels {
		m.labelIdx = append(m.labelIdx, c.Regexp.SubexpIndex(l))
	}
	help := c.Help
	if help == "" {
		help = "Log-derived metric declared in agent.yaml."
	}
	m.desc = prometheus.NewDesc(c.Name, help, append([]string{"source"}, c.Labels...), nil)
	switch c.Type {
	case "gauge":
		m.kind = kindGauge
	case "histogram":
		m.kind = kindHistogram
	}
	return m
}

// metricGroup is the log-derived metrics of a source that share one
// expression.
type metricGroup struct {
	mu      *sync.Mutex // the metrics' mu
	locked  bool        // the pipeline holds mu (batched)
	m       *matcher
	lin     *linear // nil when the expression is not linear
	idx     []int   // scratch for submatch positions
	metrics []*logMetric
}

// observe records one matching line; idx are its submatch positions. The
// caller holds m.mu.
func (m *logMetric) observe(line []byte, idx []int) {
	v := 1.0
	if m.valueIdx >= 0 {
		s, e := idx[2*m.valueIdx], idx[2*m.valueIdx+1]
		if s < 0 {
			m.badValue.Add(1)
			return
		}
		var ok bool
		if v, ok = parseNumber(line[s:e]); !ok {
			m.badValue.Add(1)
			return
		}
		v *= m.cfg.Scale
	}
	s := m.seriesFor(line, idx)
	if s == nil {
		m.overflow.Add(1)
		return
	}
	switch m.kind {
	case kindCounter:
		if v > 0 {
			s.value += v
		}
	case kindGauge:
		s.value = v
	case kindHistogram:
		s.value += v
		s.count++
		// Cumulative counts are made at collect time; here only the
		// first bucket that holds v is incremented.
		// A linear search: most values fall in the first few buckets,
		// and it finds the same bucket as a binary search (the first
		// bound >= v; none for +Inf, the first for NaN).
		i := 0
		for i < len(m.cfg.Buckets) && m.cfg.Buckets[i] < v {
			i++
		}
		if i < len(s.buckets) {
			s.buckets[i]++
		}
	}
}

// seriesFor returns the series of the line's labels, made if need be, or
// nil when the metric has max_label_sets series already. Most lines have
// no labels or one short label (a status code): those are found without
// building their key or hashing it.
func (m *logMetric) seriesFor(line []byte, idx []int) *logSeries {
	if len(m.labelIdx) == 0 && m.last != nil {
		return m.last
	}
	var short uint64
	if len(m.labelIdx) == 1 {
		li := m.labelIdx[0]
		if st := idx[2*li]; st >= 0 {
			if k, ok := packWord(line, st, idx[2*li+1]); ok && k != 0 {
				for i := shortSlot(k); ; i = (i + 1) % len(m.short) {
					if e := &m.short[i]; e.key == k {
						return e.s
					} else if e.key == 0 {
						break
					}
				}
				short = k
			}
		}
	}
	s := m.lookup(line, idx)
	// At most 12 of the 16 slots are filled, so that a probe always
	// meets an empty one.
	if s != nil && short != 0 && m.nshort < 12 {
		i := shortSlot(short)
		for m.short[i].key != 0 {
			i = (i + 1) % len(m.short)
		}
		m.short[i] = shortSeries{key: short, s: s}
		m.nshort++
	}
	return s
}

// lookup finds the series of the line's labels by their key, or makes it.
func (m *logMetric) lookup(line []byte, idx []int) *logSeries {
	m.key = m.key[:0]
	for _, li := range m.labelIdx {
		if s := idx[2*li]; s >= 0 {
			m.key = append(m.key, line[s:idx[2*li+1]]...)
		}
		m.key = append(m.key, 0xff)
	}
	s := m.last
	if s == nil || string(m.key) != string(m.lastKey) {
		s = m.series[string(m.key)] // no allocation: the compiler keeps the lookup in place
	}
	if s == nil {
		if len(m.series) >= m.cfg.MaxLabelSets {
			return nil
		}
		s = &logSeries{labels: []string{m.source}}
		for _, li := range m.labelIdx {
			val := ""
			if st := idx[2*li]; st >= 0 {
				val = strings.ToValidUTF8(string(line[st:idx[2*li+1]]), "\uFFFD")
			}
			s.labels = append(s.labels, val)
		}
		if m.kind == kindHistogram {
			s.buckets = make([]uint64, len(m.cfg.Buckets))
		}
		m.series[string(m.key)] = s
		m.order = append(m.order, s)
	}
	if s != m.last {
		m.last, m.lastKey = s, append(m.lastKey[:0], m.key...)
	}
	return s
}

// collectSeries sends the metric's series; the caller holds m.mu.
func (m *logMetric) collectSeries(ch chan<- prometheus.Metric) {
	for _, s := range m.order {
		var metric prometheus.Metric
		var err error
		switch m.kind {
		case kindCounter:
			metric, err = prometheus.NewConstMetric(m.desc, prometheus.CounterValue, s.value, s.labels...)
		case kindGauge:
			metric, err = prometheus.NewConstMetric(m.desc, prometheus.GaugeValue, s.value, s.labels...)
		case kindHistogram:
			cum := make(map[float64]uint64, len(s.buckets))
			var acc uint64
			for i, b := range m.cfg.Buckets {
				acc += s.buckets[i]
				cum[b] = acc
			}
			metric, err = prometheus.NewConstHistogram(m.desc, s.count, s.value, cum, s.labels...)
		}
		if err == nil {
			ch <- metric
		}
	}
}

// collectDropped sends the metric's counts of lines it could not record.
func (m *logMetric) collectDropped(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(logMetricDroppedDesc.Desc, prometheus.CounterValue, float64(m.overflow.Load()), m.source, m.cfg.Name, "label_limit")
	ch <- prometheus.MustNewConstMetric(logMetricDroppedDesc.Desc, prometheus.CounterValue, float64(m.badValue.Load()), m.source, m.cfg.Name, "bad_value")
}

// parseNumber reads a decimal number without allocating; integers (the
// common case: milliseconds, bytes, status codes) take the fast path.
func parseNumber(b []byte) (float64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	if len(b) <= 15 {
		var n int64
		i := 0
		for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
			n = n*10 + int64(b[i]-'0')
		}
		if i == len(b) {
			return float64(n), true
		}
	}
	v, err := strconv.ParseFloat(string(b), 64)
	return v, err == nil
}
