package rules

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/rules/memstore"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"google.golang.org/protobuf/proto"
)

// TestRetentionOfRules: how long each series is kept follows from the
// selectors that read it: ranges, offsets, subqueries, query_offset and
// the queries of templates; `for` adds nothing (the tracker keeps time).
func TestRetentionOfRules(t *testing.T) {
	for _, tc := range []struct {
		name, rules string
		want        map[string]time.Duration // series (name and labels, "a=b" pairs) → keep
		all         bool
	}{
		{"instant only", "expr: x > 1\n        for: 10m", map[string]time.Duration{"x": 0, "y": 0}, false},
		{"range", "expr: rate(x[5m]) > 0", map[string]time.Duration{"x": 5 * time.Minute, "y": 0}, false},
		{"range of some label values", `expr: rate(x{mode="idle"}[5m]) > 0 and x > 0`,
			map[string]time.Duration{"x mode=idle": 5 * time.Minute, "x mode=user": 0}, false},
		{"offset", "expr: x offset 10m > 0 or rate(y[1m] offset 2m) > 0",
			map[string]time.Duration{"x": 10 * time.Minute, "y": 3 * time.Minute}, false},
		{"subquery", "expr: max_over_time(rate(x[1m])[30m:1m]) > 0 or max_over_time(y[10m:]) > 0",
			map[string]time.Duration{"x": 31 * time.Minute, "y": 10 * time.Minute}, false},
		{"no metric name", `expr: count_over_time({job="a"}[2m]) > 0`,
			map[string]time.Duration{"x job=a": 2 * time.Minute, "y job=a": 2 * time.Minute, "x job=b": 0}, false},
		{"name regex", `expr: count_over_time({__name__=~"x|y"}[2m]) > 0`,
			map[string]time.Duration{"x": 2 * time.Minute, "y": 2 * time.Minute, "z": 0}, false},
		{"template query", "expr: x > 0\n        annotations:\n          a: '{{ range query \"y[3m]\" }}{{ .Value }}{{ end }}'\n          b: '{{ \"z[4m]\" | query | first | value }}'",
			map[string]time.Duration{"x": 0, "y": 3 * time.Minute, "z": 4 * time.Minute}, false},
		{"computed template query", "expr: x > 0\n        annotations:\n          a: '{{ query (printf \"%s[1m]\" \"y\") }}'",
			nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := loadRules(t, "groups:\n  - name: g\n    rules:\n      - alert: A\n        labels: {severity: P3}\n        "+tc.rules+"\n")
			r := rs.Retention()
			if r.all != tc.all {
				t.Fatalf("all = %t, want %t", r.all, tc.all)
			}
			for series, want := range tc.want {
				if got := r.Keep(seriesLabels(series)); got != want {
					t.Errorf("%s kept for %v, want %v", series, got, want)
				}
			}
		})
	}
	rs := loadRules(t, "groups:\n  - name: g\n    query_offset: 1m\n    rules:\n      - record: r\n        expr: rate(x[5m])\n")
	if got, r := rs.Retention(), seriesLabels("x"); got.Keep(r) != 6*time.Minute {
		t.Errorf("query_offset 1m + 5m range: x kept for %v, want 6m", got.Keep(r))
	}
}

func seriesLabels(s string) labels.Labels {
	f := strings.Fields(s)
	lv := []string{"__name__", f[0]}
	for _, p := range f[1:] {
		k, v, _ := strings.Cut(p, "=")
		lv = append(lv, k, v)
	}
	return labels.FromStrings(lv...)
}

// retentionRules read in every way the store must answer for.
const retentionRules = `groups:
  - name: g
    rules:
      - record: rec
        expr: sum without (a) (rate(c[2m]))
      - alert: Instant
        expr: g > 5
        for: 5m
        labels: {severity: P3}
        annotations:
          summary: '{{ range query "sum(h_bucket)" }}{{ .Value }}{{ end }}'
      - alert: Ranged
        expr: increase(c{a="1"}[3m]) > 100 or rate(rec[1m]) > 1000
        labels: {severity: P2}
      - alert: Offset
        expr: g offset 4m > g
        labels: {severity: P4}
      - alert: Subquery
        expr: max_over_time(rate(c[1m])[5m:30s]) > 1000
        labels: {severity: P4}
      - alert: Quantile
        expr: histogram_quantile(0.9, rate(h_bucket[2m])) > 0.5
        labels: {severity: P3}
      - alert: Alerts
        expr: count(ALERTS{alertstate="firing"}) > 0
        labels: {severity: P4}
  - name: late
    query_offset: 1m
    rules:
      - alert: Late
        expr: delta(g[1m]) > 3 and c{a="2"} > 0
        labels: {severity: P4}
`

// TestStoreRetentionAnswersAsFullStore: a store that keeps only what the
// rules read answers every rule's expression (and every template's
// query) exactly as a store that keeps everything, over 40 minutes of
// gathers with a series that ends, one that comes back, a family missing
// for a round, recording rules and ALERTS; and it holds far fewer samples.
func TestStoreRetentionAnswersAsFullStore(t *testing.T) {
	rs := loadRules(t, retentionRules)
	const interval = 10 * time.Second
	full := memstore.New(0, 0)
	trimmed := memstore.New(0, 0)
	trimmed.SetRetention(rs.Retention(), 2*interval)
	engine := newEngine(nil, interval)
	type q struct {
		expr   string
		offset time.Duration
	}
	var queries []q
	for _, g := range rs.Groups {
		for _, r := range g.Rules {
			queries = append(queries, q{r.Expr, g.QueryOffset})
		}
	}
	queries = append(queries, q{"sum(h_bucket)", 0}, q{`ALERTS{alertstate="firing"}`, 0})
	answer := func(s *memstore.Store, qu q, ts time.Time) string {
		v, err := queryFunc(engine, s)(context.Background(), qu.expr, ts.Add(-qu.offset))
		if err != nil {
			t.Fatalf("%s: %v", qu.expr, err)
		}
		var out []string
		for _, smp := range v {
			out = append(out, fmt.Sprintf("%s=%g", smp.Metric, smp.F))
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	for i := range 240 {
		ts := t0.Add(time.Duration(i) * interval)
		mfs := retentionGather(i)
		for _, s := range []*memstore.Store{full, trimmed} {
			s.AppendFamilies(ts, mfs)
			// What the engine writes: a recorded series and ALERTS.
			s.Append(labels.FromStrings("__name__", "rec", "b", "x"), ts, float64(i))
			if i%30 < 20 {
				s.Append(labels.FromStrings("__name__", "ALERTS", "alertname", "A", "alertstate", "firing"), ts, 1)
			} else if i%30 == 20 {
				s.Append(labels.FromStrings("__name__", "ALERTS", "alertname", "A", "alertstate", "firing"), ts, math.Float64frombits(value.StaleNaN))
			}
		}
		for _, qu := range queries {
			if a, b := answer(full, qu, ts), answer(trimmed, qu, ts); a != b {
				t.Fatalf("step %d, %s: the trimmed store answers\n%s\nthe full one\n%s", i, qu.expr, b, a)
			}
		}
	}
	f, tr := full.Stats(), trimmed.Stats()
	t.Logf("after 40 minutes: full store %d series, %d samples; trimmed %d series, %d samples", f.Series, f.Samples, tr.Series, tr.Samples)
	// c is read back 6 minutes (subquery 5m + range 1m) and h_bucket 2
	// minutes, plus the margin; g 4 minutes; o and the ended series only
	// by their newest sample.
	if tr.Samples*4 > f.Samples {
		t.Errorf("the trimmed store holds %d samples of the full one's %d", tr.Samples, f.Samples)
	}
}

// retentionGather is round i of a registry: counters c{a} growing, a gauge
// g, a histogram h, a gauge o nobody reads, a series e that ends at round
// 90, a series b absent between rounds 100 and 150, and the whole family g
// missing at round 60 (a collector that timed out).
func retentionGather(i int) []*dto.MetricFamily {
	fi := float64(i)
	lp := func(k, v string) []*dto.LabelPair {
		return []*dto.LabelPair{{Name: proto.String(k), Value: proto.String(v)}}
	}
	c := &dto.MetricFamily{Name: proto.String("c"), Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{
		{Label: lp("a", "1"), Counter: &dto.Counter{Value: proto.Float64(fi * 7)}},
		{Label: lp("a", "2"), Counter: &dto.Counter{Value: proto.Float64(fi * fi)}},
	}}
	if i < 100 || i >= 150 {
		c.Metric = append(c.Metric, &dto.Metric{Label: lp("a", "b"), Counter: &dto.Counter{Value: proto.Float64(fi)}})
	}
	if i < 90 {
		c.Metric = append(c.Metric, &dto.Metric{Label: lp("a", "e"), Counter: &dto.Counter{Value: proto.Float64(fi * 3)}})
	}
	h := &dto.MetricFamily{Name: proto.String("h"), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{
		Histogram: &dto.Histogram{SampleCount: proto.Uint64(uint64(3 * i)), SampleSum: proto.Float64(fi),
			Bucket: []*dto.Bucket{{UpperBound: proto.Float64(0.5), CumulativeCount: proto.Uint64(uint64(i))}, {UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(uint64(2 * i))}}},
	}}}
	out := []*dto.MetricFamily{c, h, gauge("o", fi)}
	if i != 60 {
		out = append(out, gauge("g", math.Mod(fi*1.7, 11)))
	}
	return out
}

// BenchmarkStoreBytesPerSample reports what the store costs per sample
// held and per series, from the heap after a GC: 1,000 series over a 1 h
// window at a 10 s interval (361 samples each), and the same series
// keeping their newest sample only.
func BenchmarkStoreBytesPerSample(b *testing.B) {
	const interval = 10 * time.Second
	gathers := make([][]*dto.MetricFamily, 16)
	for j := range gathers {
		gathers[j] = hostFamilies(1000, j, false)
	}
	var ms runtime.MemStats
	heap := func() uint64 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for b.Loop() {
		before := heap()
		latest := memstore.New(time.Hour, 0)
		latest.SetRetention(Retention{}, 0)
		for i := range 20 {
			latest.AppendFamilies(t0.Add(time.Duration(i)*interval), gathers[i%len(gathers)])
		}
		mid := heap()
		windowed := memstore.New(time.Hour, 0)
		for i := range 720 {
			windowed.AppendFamilies(t0.Add(time.Duration(i)*interval), gathers[i%len(gathers)])
		}
		after := heap()
		ls, ws := latest.Stats(), windowed.Stats()
		if ls.Samples != 1000 || ws.Samples != 1000*361 {
			b.Fatalf("latest %+v, windowed %+v", ls, ws)
		}
		perSeries := float64(mid-before) / float64(ls.Series)
		b.ReportMetric(perSeries, "B/series")
		b.ReportMetric((float64(after-mid)-perSeries*float64(ws.Series))/float64(ws.Samples-ws.Series), "B/sample")
		runtime.KeepAlive(latest)
		runtime.KeepAlive(windowed)
	}
}
