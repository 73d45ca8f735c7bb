package memstore

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"google.golang.org/protobuf/proto"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// query runs an instant query over s through a plain promql engine with
// the store's lookback delta, as the rule engine does.
func query(t *testing.T, s *Store, q string, ts time.Time) promql.Vector {
	t.Helper()
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute, LookbackDelta: LookbackDelta})
	qr, err := engine.NewInstantQuery(context.Background(), s, nil, q, ts)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer qr.Close()
	res := qr.Exec(context.Background())
	v, err := res.Vector()
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

func gauge(name string, v float64) *dto.MetricFamily {
	return &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(v)}}}}
}

// TestStoreGatherMatchesScrape checks that what the rules see of a
// registry is what Prometheus sees when it scrapes it.
func TestStoreGatherMatchesScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "req_seconds", Help: "h", Buckets: []float64{0.5, 2}}, []string{"source"})
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "req_total", Help: "c"}, []string{"status"})
	sm := prometheus.NewSummary(prometheus.SummaryOpts{Name: "lat", Help: "s", Objectives: map[float64]float64{0.5: 0.05}})
	reg.MustRegister(h, c, sm)
	h.WithLabelValues("access").Observe(1)
	h.WithLabelValues("access").Observe(3)
	c.WithLabelValues("500").Add(7)
	sm.Observe(4)
	s := New(time.Hour, 0)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	s.AppendFamilies(t0, mfs)
	for q, want := range map[string]float64{
		`req_seconds_bucket{source="access",le="0.5"}`:  0,
		`req_seconds_bucket{source="access",le="2"}`:    1,
		`req_seconds_bucket{source="access",le="+Inf"}`: 2,
		`req_seconds_count{source="access"}`:            2,
		`req_seconds_sum{source="access"}`:              4,
		`req_total{status="500"}`:                       7,
		`lat{quantile="0.5"}`:                           4,
		`lat_count`:                                     1,
	} {
		v := query(t, s, q, t0)
		if len(v) != 1 || v[0].F != want {
			t.Errorf("%s = %v, want %v", q, v, want)
		}
	}
}

func TestStoreWindowCapAndStaleness(t *testing.T) {
	s := New(10*time.Minute, 3)
	fam := func(names ...string) []*dto.MetricFamily {
		var out []*dto.MetricFamily
		for _, n := range names {
			out = append(out, gauge(n, 1))
		}
		return out
	}
	for i := range 30 {
		s.AppendFamilies(t0.Add(time.Duration(i)*time.Minute), fam("a", "b", "c", "d"))
	}
	st := s.Stats()
	// 3 series of 11 samples (the window is inclusive at both ends).
	if st.Series != 3 || st.Samples != 33 || st.Dropped != 30 {
		t.Fatalf("stats %+v, want 3 series, 33 samples, 30 drops", st)
	}
	for _, ms := range s.series {
		if cap(ms.samples) > 4*len(ms.samples) {
			t.Errorf("series %s holds %d samples in an array of %d: memory not returned", ms.lset, len(ms.samples), cap(ms.samples))
		}
	}
	// "a" vanishes: once could be a collector timing out, so it answers
	// one more round; then a staleness marker hides it.
	last := t0.Add(30 * time.Minute)
	s.AppendFamilies(last, fam("b", "c"))
	if v := query(t, s, "a", last); len(v) != 1 {
		t.Fatalf("a series missing once is already hidden: %v", v)
	}
	last = last.Add(time.Minute)
	s.AppendFamilies(last, fam("b", "c"))
	if v := query(t, s, "a", last); len(v) != 0 {
		t.Fatalf("a vanished series still answers: %v", v)
	}
	if v := query(t, s, "b", last); len(v) != 1 {
		t.Fatalf("b: %v", v)
	}
	// Everything ages out once no longer gathered.
	s.AppendFamilies(last.Add(time.Hour), nil)
	if st := s.Stats(); st.Series != 0 || st.Samples != 0 {
		t.Fatalf("after the window passed: %+v, want empty", st)
	}
}

// TestStoreLabelSetEnds checks that a label set that ends while its family
// is still exported is hidden at once, as Prometheus' staleness does.
func TestStoreLabelSetEnds(t *testing.T) {
	s := New(time.Hour, 0)
	two := &dto.MetricFamily{Name: proto.String("up"), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{
		{Label: []*dto.LabelPair{{Name: proto.String("probe"), Value: proto.String("a")}}, Gauge: &dto.Gauge{Value: proto.Float64(1)}},
		{Label: []*dto.LabelPair{{Name: proto.String("probe"), Value: proto.String("b")}}, Gauge: &dto.Gauge{Value: proto.Float64(1)}},
	}}
	s.AppendFamilies(t0, []*dto.MetricFamily{two})
	one := proto.Clone(two).(*dto.MetricFamily)
	one.Metric = one.Metric[:1]
	s.AppendFamilies(t0.Add(time.Minute), []*dto.MetricFamily{one})
	if v := query(t, s, "up", t0.Add(time.Minute)); len(v) != 1 {
		t.Fatalf("up = %v, want only probe a", v)
	}
}

func TestStoreRecordedSeries(t *testing.T) {
	s := New(0, 0)
	l := labels.FromStrings("__name__", "x", "job", "a")
	s.Append(l, t0, 1)
	s.Append(l, t0, 2)                   // same timestamp: replaced
	s.Append(l, t0.Add(-time.Second), 3) // out of order: ignored
	s.Append(l, t0.Add(time.Minute), math.Inf(1))
	v := query(t, s, "x", t0)
	if len(v) != 1 || v[0].F != 2 {
		t.Fatalf("x at t0 = %v, want 2", v)
	}
}

// TestQuerierLabels checks the label names and values a querier lists
// for the series its matchers select: sorted, without duplicates.
func TestQuerierLabels(t *testing.T) {
	s := New(0, 0)
	for _, l := range []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "b", "zone", "z1"),
		labels.FromStrings("__name__", "up", "job", "a"),
		labels.FromStrings("__name__", "up", "job", "a", "zone", "z2"),
		labels.FromStrings("__name__", "other", "job", "c"),
	} {
		s.Append(l, t0, 1)
	}
	q, err := s.Querier(0, t0.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	vals, _, err := q.LabelValues(context.Background(), "job", nil, up)
	if err != nil || strings.Join(vals, ",") != "a,b" {
		t.Errorf("LabelValues(job, up) = %q, %v; want a,b", vals, err)
	}
	names, _, err := q.LabelNames(context.Background(), nil, up)
	if err != nil || strings.Join(names, ",") != "__name__,job,zone" {
		t.Errorf("LabelNames(up) = %q, %v; want __name__,job,zone", names, err)
	}
	all, _, _ := q.LabelValues(context.Background(), "job", nil)
	if strings.Join(all, ",") != "a,b,c" {
		t.Errorf("LabelValues(job) = %q; want a,b,c", all)
	}
}
