package host

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// labelCache keeps the label pairs of the host's series between gathers.
// client_golang's const metrics build them anew for every sample (a slice,
// a pair per label, a sort), the largest share of what a gather allocated;
// a host's series keep their labels from one gather to the next (the same
// CPUs, devices, mounts), so the pairs are built once, through
// prometheus.NewConstMetric itself, and shared read-only by the gathers
// that follow. The registry and the encoders only read a metric's labels.
//
// Pairs not used for sweepEvery gathers are dropped, so that series that
// come and go (veth interfaces, mounts) do not grow the cache; a miss only
// costs what every sample cost before.
type labelCache struct {
	mu     sync.Mutex
	gather uint64 // gathers begun
	pairs  map[labelKey]*labelEntry
}

// maxCachedLabels is the most label values a cached series has; the host's
// families have at most four (node_filesystem_*).
const maxCachedLabels = 4

// sweepEvery is how many gathers (scrapes and the agent's own) an entry
// survives unused.
const sweepEvery = 64

type labelKey struct {
	desc   *prometheus.Desc
	values [maxCachedLabels]string
}

type labelEntry struct {
	pairs []*dto.LabelPair
	used  uint64
}

// begin counts a gather and, every sweepEvery gathers, drops the entries
// that none of the last sweepEvery gathers used.
func (lc *labelCache) begin() {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.gather++
	if lc.gather%sweepEvery != 0 {
		return
	}
	for k, e := range lc.pairs {
		if lc.gather-e.used > sweepEvery {
			delete(lc.pairs, k)
		}
	}
}

// constMetric is prometheus.MustNewConstMetric (it panics on the same
// mistakes) whose label pairs come from the cache.
func (c *Collector) constMetric(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	if len(labels) > maxCachedLabels || (t != prometheus.GaugeValue && t != prometheus.CounterValue && t != prometheus.UntypedValue) {
		return prometheus.MustNewConstMetric(d, t, v, labels...)
	}
	k := labelKey{desc: d}
	copy(k.values[:], labels)
	lc := &c.labels
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
	return &cachedMetric{desc: d, typ: t, val: v, labels: e.pairs}
}

// cachedMetric is a const metric whose label pairs are shared.
type cachedMetric struct {
	desc   *prometheus.Desc
	typ    prometheus.ValueType
	val    float64
	labels []*dto.LabelPair
}

func (m *cachedMetric) Desc() *prometheus.Desc { return m.desc }

// Write fills out as a const metric's Write does.
func (m *cachedMetric) Write(out *dto.Metric) error {
	out.Label = m.labels
	switch m.typ {
	case prometheus.CounterValue:
		out.Counter = &dto.Counter{Value: proto.Float64(m.val)}
	case prometheus.GaugeValue:
		out.Gauge = &dto.Gauge{Value: proto.Float64(m.val)}
	default:
		out.Untyped = &dto.Untyped{Value: proto.Float64(m.val)}
	}
	return nil
}
