package collectors

import (
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

	// mu guards series and order against collect; the metrics of a
	// metricGroup share their group's, which observe's caller holds, so
	// that a line costs one lock for all of them.
	mu     *sync.Mutex
	series map[string]*logSeries
	order  []*logSeries
	key    []byte
	// The series of the previous line, whose labels most lines repeat
	// (status 200, or no labels at all): no map lookup for those.
	last     *logSeries
	lastKey  []byte
	overflow atomic.Uint64
	badValue atomic.Uint64
}

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
			m.overflow.Add(1)
			return
		}
		s = &logSeries{labels: []string{m.source}}
		for _, li := range m.labelIdx {
			val := ""
			if st := idx[2*li]; st >= 0 {
				val = strings.ToValidUTF8(string(line[st:idx[2*li+1]]), "\uFFFD")
			}
			s.labels = append(s.labels, val)
		}
		if m.cfg.Type == "histogram" {
			s.buckets = make([]uint64, len(m.cfg.Buckets))
		}
		m.series[string(m.key)] = s
		m.order = append(m.order, s)
	}
	if s != m.last {
		m.last, m.lastKey = s, append(m.lastKey[:0], m.key...)
	}
	switch m.cfg.Type {
	case "counter":
		if v > 0 {
			s.value += v
		}
	case "gauge":
		s.value = v
	case "histogram":
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

// collectSeries sends the metric's series; the caller holds m.mu.
func (m *logMetric) collectSeries(ch chan<- prometheus.Metric) {
	for _, s := range m.order {
		var metric prometheus.Metric
		var err error
		switch m.cfg.Type {
		case "counter":
			metric, err = prometheus.NewConstMetric(m.desc, prometheus.CounterValue, s.value, s.labels...)
		case "gauge":
			metric, err = prometheus.NewConstMetric(m.desc, prometheus.GaugeValue, s.value, s.labels...)
		case "histogram":
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
	ch <- prometheus.MustNewConstMetric(logMetricDroppedDesc, prometheus.CounterValue, float64(m.overflow.Load()), m.source, m.cfg.Name, "label_limit")
	ch <- prometheus.MustNewConstMetric(logMetricDroppedDesc, prometheus.CounterValue, float64(m.badValue.Load()), m.source, m.cfg.Name, "bad_value")
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
