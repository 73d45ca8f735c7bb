package collectors

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fakeCollector func(ctx context.Context, ch chan<- prometheus.Metric) error

func (f fakeCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	return f(ctx, ch)
}

func TestSetReportsSuccessPerCollector(t *testing.T) {
	ok := fakeCollector(func(context.Context, chan<- prometheus.Metric) error { return nil })
	fail := fakeCollector(func(context.Context, chan<- prometheus.Metric) error { return errors.New("boom") })
	empty := fakeCollector(func(context.Context, chan<- prometheus.Metric) error { return ErrNoData })
	// A collector stuck on I/O must not hold the gather beyond the timeout.
	stuck := fakeCollector(func(ctx context.Context, _ chan<- prometheus.Metric) error {
		<-ctx.Done()
		return ctx.Err()
	})
	set := NewSet([]Named{{Name: "ok", Collector: ok}, {Name: "fail", Collector: fail}, {Name: "empty", Collector: empty}, {Name: "stuck", Collector: stuck}}, 200*time.Millisecond, nil)
	start := time.Now()
	err := testutil.CollectAndCompare(set, strings.NewReader(`
# HELP tokpulse_collector_success 1 if the collector succeeded in the last gather, 0 if it failed.
# TYPE tokpulse_collector_success gauge
tokpulse_collector_success{collector="empty"} 1
tokpulse_collector_success{collector="fail"} 0
tokpulse_collector_success{collector="ok"} 1
tokpulse_collector_success{collector="stuck"} 0
`), "tokpulse_collector_success")
	if err != nil {
		t.Error(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gather took %s; the timeout did not bound the stuck collector", d)
	}
	if n := testutil.CollectAndCount(set, "tokpulse_collector_duration_seconds"); n != 4 {
		t.Errorf("%d duration series, want 4", n)
	}
	got := map[string]Status{}
	for _, st := range set.Status() {
		got[st.Name] = st
	}
	if !got["ok"].OK || got["fail"].OK || got["fail"].Detail != "boom" || got["ok"].LastRun.IsZero() {
		t.Errorf("Status() = %+v", got)
	}
}

// parts is a Selective collector of two parts, a_total and b_total.
type parts struct{}

var (
	partA = prometheus.NewDesc("a_total", "a", nil, nil)
	partB = prometheus.NewDesc("b_total", "b", nil, nil)
)

func (parts) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	return parts{}.UpdateWanted(ctx, ch, func(string) bool { return true })
}

func (parts) UpdateWanted(_ context.Context, ch chan<- prometheus.Metric, want Want) error {
	if want("a_") {
		ch <- prometheus.MustNewConstMetric(partA, prometheus.CounterValue, 1)
	}
	if want("b_") {
		ch <- prometheus.MustNewConstMetric(partB, prometheus.CounterValue, 2)
	}
	return nil
}

// TestSetCollectWanted: a gather that wants only some metrics leaves out
// the other parts of Selective members, and runs the rest whole; Collect
// (a scrape) gathers everything.
func TestSetCollectWanted(t *testing.T) {
	plain := fakeCollector(func(_ context.Context, ch chan<- prometheus.Metric) error {
		ch <- prometheus.MustNewConstMetric(partB, prometheus.CounterValue, 3)
		return nil
	})
	set := NewSet([]Named{{Name: "parts", Collector: parts{}}, {Name: "plain", Collector: plain}}, time.Second, nil)
	names := func(collect func(ch chan<- prometheus.Metric)) string {
		ch := make(chan prometheus.Metric, 16)
		collect(ch)
		close(ch)
		var out []string
		for m := range ch {
			if d := m.Desc().String(); !strings.Contains(d, "tokpulse_collector_") {
				out = append(out, d[strings.Index(d, `"`)+1:strings.Index(d, `",`)])
			}
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		name string
		want Want
		got  string
	}{
		{"scrape", nil, "a_total b_total b_total"},
		{"only a", func(p string) bool { return p == "a_" }, "a_total b_total"},
		{"nothing", func(string) bool { return false }, "b_total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(func(ch chan<- prometheus.Metric) { set.CollectWanted(ch, tc.want) }); got != tc.got {
				t.Errorf("gathered %q, want %q", got, tc.got)
			}
		})
	}
	if got := names(set.Collect); got != "a_total b_total b_total" {
		t.Errorf("Collect gathered %q, want everything", got)
	}
}
