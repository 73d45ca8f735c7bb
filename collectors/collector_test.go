package collectors

import (
	"context"
	"errors"
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
