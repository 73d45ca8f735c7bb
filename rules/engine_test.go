package rules

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/rules/memstore"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/promql"

	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// observing is a Tracker that records what the engine tells it.
type observing struct {
	seen []string // "rule:known:samples" per Observe
}

func (o *observing) SetRules([]alert.Rule) {}

func (o *observing) Observe(_ time.Time, r alert.Rule, s []alert.Sample, known bool) []alert.Active {
	o.seen = append(o.seen, fmt.Sprintf("%s:%t:%d", r.Name, known, len(s)))
	return nil
}

func loadRules(t *testing.T, body string) *RuleSet {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := Load([]string{p}, LoadOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestFreshness: a rule is evaluated as unknown while a metric it reads
// (directly, through a recording rule, or possibly through a __name__
// regex) has no fresh data; a rule reading a range needs fresh data at
// two evaluations, so that rate() has two samples.
func TestFreshness(t *testing.T) {
	rs := loadRules(t, `groups:
  - name: g
    rules:
      - record: y
        expr: x * 2
      - alert: Instant
        expr: x == 0
        labels: {severity: P1}
      - alert: Ranged
        expr: rate(c[5m]) >= 0
        labels: {severity: P2}
      - alert: ViaRecording
        expr: y == 0
        labels: {severity: P2}
      - alert: AnyName
        expr: '{__name__=~"c|z"} >= 0'
        labels: {severity: P3}
      - alert: OverAlerts
        expr: count(ALERTS) >= 0
        labels: {severity: P4}
`)
	obs := &observing{}
	cold := map[string]bool{"x": true}
	m := NewManager(Options{Tracker: obs, Interval: 10 * time.Second, Freshness: func() map[string]bool { return cold }})
	m.Swap(rs, 10*time.Second)
	step := func(i int) string {
		obs.seen = nil
		ts := t0.Add(time.Duration(i) * 10 * time.Second)
		m.Ingest(ts, []*dto.MetricFamily{gauge("x", 0), gauge("c", float64(i))})
		if err := m.Evaluate(context.Background(), ts); err != nil {
			t.Fatal(err)
		}
		return strings.Join(obs.seen, " ")
	}
	for i, want := range []string{
		// x cold; c fresh but only once so far.
		"Instant:false:0 Ranged:false:0 ViaRecording:false:0 AnyName:false:0 OverAlerts:true:0",
		// c fresh twice: Ranged is known; x still cold.
		"Instant:false:0 Ranged:true:1 ViaRecording:false:0 AnyName:false:0 OverAlerts:true:0",
	} {
		if got := step(i); got != want {
			t.Fatalf("evaluation %d: %s\nwant %s", i, got, want)
		}
	}
	cold = nil // x's source has run
	if got, want := step(2), "Instant:true:1 Ranged:true:1 ViaRecording:true:1 AnyName:true:1 OverAlerts:true:0"; got != want {
		t.Fatalf("once x is fresh: %s\nwant %s", got, want)
	}
}

// TestAlertsSeries: the engine writes ALERTS and ALERTS_FOR_STATE as
// Prometheus does, marks those of alerts that changed state or ended
// stale at once, and rules can read them.
func TestAlertsSeries(t *testing.T) {
	rs := loadRules(t, `groups:
  - name: g
    rules:
      - alert: Down
        expr: up == 0
        for: 20s
        labels: {severity: P1}
  - name: meta
    rules:
      - alert: SomethingFires
        expr: count(ALERTS{alertstate="firing", alertname="Down"}) > 0
        labels: {severity: P4}
`)
	tr, err := incident.New(incident.Options{Policies: alert.DefaultPolicies()})
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(Options{Tracker: tr, Interval: 10 * time.Second})
	m.Swap(rs, 10*time.Second)
	ctx := context.Background()
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Second) }
	eval := func(i int, up float64) {
		m.Ingest(at(i), []*dto.MetricFamily{gauge("up", up)})
		if err := m.Evaluate(ctx, at(i)); err != nil {
			t.Fatal(err)
		}
		if err := tr.Commit(ctx, at(i)); err != nil {
			t.Fatal(err)
		}
	}
	series := func(q string, i int) string {
		var out []string
		for _, s := range query(t, m.Store(), q, at(i)) {
			out = append(out, fmt.Sprintf("%s %s", s.Metric, strconv.FormatFloat(s.F, 'f', -1, 64)))
		}
		sort.Strings(out)
		return strings.Join(out, "; ")
	}
	eval(0, 0)
	if got, want := series(`{__name__=~"ALERTS.*"}`, 0), fmt.Sprintf(`{__name__="ALERTS", alertname="Down", alertstate="pending", severity="P1"} 1; {__name__="ALERTS_FOR_STATE", alertname="Down", severity="P1"} %d`, at(0).Unix()); got != want {
		t.Fatalf("pending: %s\nwant %s", got, want)
	}
	eval(1, 0)
	eval(2, 0) // for elapsed: firing
	if got, want := series(`ALERTS{alertname="Down"}`, 2), `{__name__="ALERTS", alertname="Down", alertstate="firing", severity="P1"} 1`; got != want {
		t.Fatalf("firing: %s\nwant %s (the pending series stale at once)", got, want)
	}
	eval(3, 0) // the meta rule sees ALERTS
	if got := series(`ALERTS{alertname="SomethingFires"}`, 3); !strings.Contains(got, `alertstate="firing"`) {
		t.Fatalf("a rule over ALERTS did not fire: %q", got)
	}
	eval(4, 1) // recovered
	if got := series(`ALERTS{alertname="Down"}`, 4); got != "" {
		t.Fatalf("after recovery: %s, want no ALERTS of Down", got)
	}
}

// TestRecordingRuleStaleness: a recorded series the rule stops producing
// ends at once, not 5 minutes later.
func TestRecordingRuleStaleness(t *testing.T) {
	rs := loadRules(t, `groups:
  - name: g
    rules:
      - record: high
        expr: x > 1
`)
	tr, _ := incident.New(incident.Options{Policies: alert.DefaultPolicies()})
	m := NewManager(Options{Tracker: tr, Interval: 10 * time.Second})
	m.Swap(rs, 10*time.Second)
	for i, v := range []float64{5, 0} {
		ts := t0.Add(time.Duration(i) * 10 * time.Second)
		m.Ingest(ts, []*dto.MetricFamily{gauge("x", v)})
		if err := m.Evaluate(context.Background(), ts); err != nil {
			t.Fatal(err)
		}
		n := len(query(t, m.Store(), "high", ts))
		if want := map[int]int{0: 1, 1: 0}[i]; n != want {
			t.Fatalf("evaluation %d: %d samples of high, want %d", i, n, want)
		}
	}
}

// query runs an instant query over s as the rules do.
func query(t *testing.T, s *memstore.Store, q string, ts time.Time) promql.Vector {
	t.Helper()
	v, err := queryFunc(newEngine(nil, time.Second), s)(context.Background(), q, ts)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// TestReadsFollowsSwap: Reads answers for the rules in force, also after
// a Swap to rules that read other names (its memo of answers is the
// old rules' until then).
func TestReadsFollowsSwap(t *testing.T) {
	memory := loadRules(t, `groups:
  - name: g
    rules:
      - alert: Memory
        expr: node_memory_MemAvailable_bytes < 1
        labels: {severity: P2}
`)
	cpu := loadRules(t, `groups:
  - name: g
    rules:
      - alert: CPU
        expr: rate(node_cpu_seconds_total[1m]) > 0.9
        labels: {severity: P2}
`)
	m := NewManager(Options{Tracker: &observing{}, Interval: 10 * time.Second})
	for i, step := range []struct {
		rs          *RuleSet
		memory, cpu bool
	}{
		{memory, true, false},
		{cpu, false, true},
		{memory, true, false},
	} {
		m.Swap(step.rs, 10*time.Second)
		for range 2 { // the second answer comes from the memo
			if got := m.Reads("node_memory_"); got != step.memory {
				t.Errorf("step %d: Reads(node_memory_) = %t, want %t", i, got, step.memory)
			}
			if got := m.Reads("node_cpu_seconds_total"); got != step.cpu {
				t.Errorf("step %d: Reads(node_cpu_seconds_total) = %t, want %t", i, got, step.cpu)
			}
		}
	}
}
