// Package metriccache keeps the label pairs of const metrics between
// gathers. client_golang's prometheus.MustNewConstMetric builds a sample's
// label pairs anew at every gather (a slice, a pair per label, a sort),
// the largest share of what a gather of the agent allocated; a collector's
// series mostly keep their labels from one gather to the next (the same
// CPUs, devices, mounts, rules), so a Cache builds them once, through
// prometheus.MustNewConstMetric itself, and shares them read-only with the
// gathers that follow. The registry and the encoders only read a metric's
// labels.
package metriccache

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Cache is one collector's label pairs. Its zero value is ready; it is safe
// for concurrent use (a scrape and the agent's own gather overlap).
//
// Pairs not used for SweepEvery gathers are dropped, so that series that
// come and go (veth interfaces, mounts) do not grow the cache; a miss only
// costs what every sample cost before.
type Cache struct {
	mu     sync.Mutex
	gather uint64 // gathers begun
	pairs  map[labelKey]*labelEntry
}

// MaxLabels is the most label values a cached series has (the host's
// node_network_info has seven); series with more are built as
// prometheus.MustNewConstMetric builds them.
const MaxLabels = 8

// SweepEvery is how many gathers (scrapes and the agent's own) an entry
// survives unused.
const SweepEvery = 64

type labelKey struct {
	desc   *prometheus.Desc
	values [MaxLabels]string
}

type labelEntry struct {
	pairs []*dto.LabelPair
	used  uint64
}

// Begin counts a gather; a collector calls it at the start of each. Every
// SweepEvery gathers it drops the entries that none of the last SweepEvery
// gathers used.
func (lc *Cache) Begin() {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.gather++
	if lc.gather%SweepEvery != 0 {
		return
	}
	for k, e := range lc.pairs {
		if lc.gather-e.used > SweepEvery {
			delete(lc.pairs, k)
		}
	}
}

// MustNew is prometheus.MustNewConstMetric (it panics on the same
// mistakes) whose label pairs come from the cache.
func (lc *Cache) MustNew(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	if len(labels) > MaxLabels || (t != prometheus.GaugeValue && t != prometheus.CounterValue && t != prometheus.UntypedValue) {
		return prometheus.MustNewConstMetric(d, t, v, labels...)
	}
	k := labelKey{desc: d}
	copy(k.values[:], labels)
	lc.mu.Lock()
	e, ok := lc.pairs[k]
	if ok {
		e.used = lc.gather
	}
	lc.mu.Unlock()
	if !ok {
		m := prometheus.MustNewConstMetric(d, t, v, labels...)
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			panic(err) // as MustNewConstMetric: a programming error
		}
		lc.mu.Lock()
		if lc.pairs == nil {
			lc.pairs = map[labelKey]*labelEntry{}
		}
		lc.pairs[k] = &labelEntry{pairs: pb.Label, used: lc.gather}
		lc.mu.Unlock()
		return m
	}
	return newCached(d, t, v, e.pairs)
}

// cached is a const metric whose label pairs are shared. Each value type
// holds its value and the value's message too, so that a sample costs one
// allocation instead of three (the metric, the message, the float). The
// messages a Write points out to are the metric's own: a gather only reads
// them.
type cached struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	val    float64
}

// Desc implements prometheus.Metric.
func (m *cached) Desc() *prometheus.Desc { return m.desc }

type cachedCounter struct {
	cached
	msg dto.Counter
}

// Write implements prometheus.Metric.
func (m *cachedCounter) Write(out *dto.Metric) error {
	out.Label, out.Counter = m.labels, &m.msg
	return nil
}

type cachedGauge struct {
	cached
	msg dto.Gauge
}

// Write implements prometheus.Metric.
func (m *cachedGauge) Write(out *dto.Metric) error {
	out.Label, out.Gauge = m.labels, &m.msg
	return nil
}

type cachedUntyped struct {
	cached
	msg dto.Untyped
}

// Write implements prometheus.Metric.
func (m *cachedUntyped) Write(out *dto.Metric) error {
	out.Label, out.Untyped = m.labels, &m.msg
	return nil
}

func newCached(d *prometheus.Desc, t prometheus.ValueType, v float64, pairs []*dto.LabelPair) prometheus.Metric {
	c := cached{desc: d, labels: pairs, val: v}
	switch t {
	case prometheus.CounterValue:
		m := &cachedCounter{cached: c}
		m.msg.Value = &m.val
		return m
	case prometheus.GaugeValue:
		m := &cachedGauge{cached: c}
		m.msg.Value = &m.val
		return m
	default:
		m := &cachedUntyped{cached: c}
		m.msg.Value = &m.val
		return m
	}
}

// Len returns the number of series whose pairs are cached.
func (lc *Cache) Len() int {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return len(lc.pairs)
}
