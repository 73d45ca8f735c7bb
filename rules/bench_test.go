package rules

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/rules/memstore"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// hostFamilies builds a gather of about n series shaped like a busy
// TokPulse host: the series the default pack reads (CPUs, memory,
// filesystems, HTTP status counters and duration buckets per log source,
// log matches, probes, checks, units) and filler for the rest, at round i
// so that counters grow.
//
// A healthy host fires nothing; an unhealthy one has 5xx, 429 and log
// matches growing on every source, which fires 18 alerts.
func hostFamilies(n, i int, unhealthy bool) []*dto.MetricFamily {
	var mfs []*dto.MetricFamily
	count := 0
	fam := func(name string, typ dto.MetricType) *dto.MetricFamily {
		mf := &dto.MetricFamily{Name: proto.String(name), Type: typ.Enum()}
		mfs = append(mfs, mf)
		return mf
	}
	add := func(mf *dto.MetricFamily, v float64, lv ...string) {
		m := &dto.Metric{}
		for j := 0; j+1 < len(lv); j += 2 {
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(lv[j]), Value: proto.String(lv[j+1])})
		}
		if mf.GetType() == dto.MetricType_COUNTER {
			m.Counter = &dto.Counter{Value: proto.Float64(v)}
		} else {
			m.Gauge = &dto.Gauge{Value: proto.Float64(v)}
		}
		mf.Metric = append(mf.Metric, m)
		count++
	}
	fi := float64(i)
	cpu := fam("node_cpu_seconds_total", dto.MetricType_COUNTER)
	for c := range 8 {
		for _, mode := range []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"} {
			add(cpu, fi*1.25, "cpu", strconv.Itoa(c), "mode", mode)
		}
	}
	for _, f := range []string{"MemTotal", "MemAvailable", "MemFree", "Buffers", "Cached", "SwapTotal", "SwapFree"} {
		add(fam("node_memory_"+f+"_bytes", dto.MetricType_GAUGE), 8e9-fi)
	}
	avail, size, ro := fam("node_filesystem_avail_bytes", dto.MetricType_GAUGE), fam("node_filesystem_size_bytes", dto.MetricType_GAUGE), fam("node_filesystem_readonly", dto.MetricType_GAUGE)
	for d := range 10 {
		l := []string{"device", fmt.Sprintf("/dev/sd%c1", 'a'+d), "fstype", "ext4", "mountpoint", fmt.Sprintf("/mnt/%d", d)}
		add(avail, 5e9, l...)
		add(size, 1e10, l...)
		add(ro, 0, l...)
	}
	req := fam("tokpulse_http_requests_total", dto.MetricType_COUNTER)
	bucket := fam("tokpulse_http_request_duration_seconds_bucket", dto.MetricType_COUNTER)
	for _, src := range []string{"access", "api", "admin"} {
		for _, st := range []string{"200", "201", "204", "301", "304", "400", "401", "404", "429", "500", "502", "503"} {
			v := 0.0
			switch {
			case st == "200":
				v = fi * 10
			case unhealthy:
				// Uneven growth: the alerts' values change at every
				// evaluation, so their annotations are expanded every time.
				v = fi*10 + float64((i*i)%13)
			}
			add(req, v, "source", src, "status", st)
		}
		for _, le := range []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2", "2.5", "5", "10", "30", "+Inf"} {
			add(bucket, fi*10, "source", src, "le", le)
		}
	}
	lm := fam("tokpulse_log_matches_total", dto.MetricType_COUNTER)
	for _, src := range []string{"app", "error", "access", "tokpulse"} {
		for _, p := range []string{"error", "auth", "rate_limit", "webhook", "db_connection", "webhook_failed"} {
			v := 0.0
			if unhealthy {
				v = fi + float64((i*i)%5)
			}
			add(lm, v, "source", src, "pattern", p)
		}
	}
	ps, pd := fam("tokpulse_probe_success", dto.MetricType_GAUGE), fam("tokpulse_probe_duration_seconds", dto.MetricType_GAUGE)
	for _, p := range []string{"health", "ready", "live", "performance", "errors", "postgres_tcp", "redis_tcp"} {
		add(ps, 1, "probe", p)
		add(pd, 0.05, "probe", p)
	}
	cs, cv := fam("tokpulse_check_success", dto.MetricType_GAUGE), fam("tokpulse_check_value", dto.MetricType_GAUGE)
	for _, c := range []string{"postgres", "redis_ping", "webhook_queue"} {
		add(cs, 1, "check", c)
		add(cv, 3, "check", c)
	}
	add(fam("tokpulse_process_up", dto.MetricType_GAUGE), 1, "process", "node")
	us := fam("tokpulse_systemd_unit_state", dto.MetricType_GAUGE)
	for _, u := range []string{"tokpulse.service", "postgresql.service", "redis-server.service"} {
		for _, s := range []string{"active", "activating", "deactivating", "inactive", "failed", "reloading"} {
			v := 0.0
			if s == "active" {
				v = 1
			}
			add(us, v, "unit", u, "state", s)
		}
	}
	filler := fam("tokpulse_filler_value", dto.MetricType_GAUGE)
	for j := 0; count < n; j++ {
		add(filler, fi, "id", strconv.Itoa(j))
	}
	return mfs
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func benchManager(b *testing.B) (*Manager, *incident.Tracker) {
	b.Helper()
	tr, err := incident.New(incident.Options{Policies: alert.DefaultPolicies()})
	if err != nil {
		b.Fatal(err)
	}
	m := NewManager(Options{Tracker: tr, Interval: 10 * time.Second})
	rs, err := Load([]string{"../packaging/rules/runbook.yml"}, LoadOptions{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	m.Swap(rs, 10*time.Second)
	return m, tr
}

// BenchmarkEvaluateDefaultPack is one interval's work for the default
// rule pack on a host exporting 1,000 series: one gather into the store
// and one evaluation of every rule, with the store's window already full.
// Budget: 5 ms per op.
func BenchmarkEvaluateDefaultPack(b *testing.B) {
	for _, unhealthy := range []bool{false, true} {
		name := "healthy"
		if unhealthy {
			name = "18-alerts-firing"
		}
		b.Run(name, func(b *testing.B) { benchEvaluate(b, unhealthy) })
	}
}

func benchEvaluate(b *testing.B, unhealthy bool) {
	m, tr := benchManager(b)
	const interval = 10 * time.Second
	// Long enough for every `for` of the pack (10 m at most) to have run
	// out and the store's longest history to be full.
	warm := int((15*time.Minute + m.Store().Window()) / interval)
	ctx := context.Background()
	for i := range warm {
		ts := t0.Add(time.Duration(i) * interval)
		m.Ingest(ts, hostFamilies(1000, i, unhealthy))
		_ = m.Evaluate(ctx, ts)
		_ = tr.Commit(ctx, ts)
	}
	firing, active := 0, 0
	for _, a := range tr.Alerts() {
		if a.State == alert.StateFiring {
			firing++
		}
		if a.State != alert.StateResolved {
			active++
		}
	}
	if want := map[bool]int{false: 0, true: 18}[unhealthy]; firing != want {
		b.Fatalf("%d alerts firing, want %d", firing, want)
	}
	// The gathered series, and ALERTS plus ALERTS_FOR_STATE of every
	// alert that was pending or firing within the window (ended ones keep
	// their staleness marker until it leaves the window).
	if st := m.Store().Stats(); st.Series < 1000+2*active || st.Series > 1100 {
		b.Fatalf("store holds %d series, want the 1000 gathered and the ALERTS series of at least %d alerts", st.Series, active)
	}
	// Gathers are prepared up front: their cost is the registry's, not ours.
	gathers := make([][]*dto.MetricFamily, 64)
	for j := range gathers {
		gathers[j] = hostFamilies(1000, warm+j, unhealthy)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ts := t0.Add(time.Duration(warm+i) * interval)
		m.Ingest(ts, gathers[i%len(gathers)])
		if err := m.Evaluate(ctx, ts); err != nil {
			b.Fatal(err)
		}
		if err := tr.Commit(ctx, ts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreMemory measures the heap the store holds for 1,000 series
// over a 1 h window at a 10 s interval, in steady state (after 2 h, so that
// trimming has run). Budget: 10 MB. Reported as MB/store.
func BenchmarkStoreMemory(b *testing.B) {
	const interval = 10 * time.Second
	gathers := make([][]*dto.MetricFamily, 16)
	for j := range gathers {
		gathers[j] = hostFamilies(1000, j, false)
	}
	var ms runtime.MemStats
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		s := memstore.New(time.Hour, 0)
		for i := range 720 {
			s.AppendFamilies(t0.Add(time.Duration(i)*interval), gathers[i%len(gathers)])
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapAlloc-before)/1e6, "MB/store")
		if st := s.Stats(); st.Series != 1000 || st.Samples != 1000*361 {
			b.Fatalf("stats %+v, want 1000 series of 361 samples", st)
		}
		runtime.KeepAlive(s)
	}
}

func gauge(name string, v float64) *dto.MetricFamily {
	return &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(v)}}}}
}
