package host

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/tokpulse/tokpulse-agent/internal/testutil/golden"
)

// TestConstMetricMatchesClientGolang checks that a series whose label
// pairs come from the cache writes exactly what prometheus.MustNewConstMetric
// writes, on its first gather (a miss) and on the next ones (hits), for
// every value type the host families use, and that a hit shares the pairs
// instead of building them again.
func TestConstMetricMatchesClientGolang(t *testing.T) {
	c := New(DefaultConfig(), Options{})
	tests := []struct {
		name   string
		desc   *prometheus.Desc
		typ    prometheus.ValueType
		labels []string
	}{
		{"gauge without labels", prometheus.NewDesc("g", "h", nil, nil), prometheus.GaugeValue, nil},
		{"counter with two labels", prometheus.NewDesc("c_total", "h", []string{"cpu", "mode"}, nil), prometheus.CounterValue, []string{"0", "idle"}},
		{"untyped with const labels", prometheus.NewDesc("u", "h", []string{"b", "a"}, prometheus.Labels{"z": "1"}), prometheus.UntypedValue, []string{"x", "y"}},
		{"five labels, not cached", prometheus.NewDesc("f", "h", []string{"a", "b", "c", "d", "e"}, nil), prometheus.GaugeValue, []string{"1", "2", "3", "4", "5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pairs []*dto.LabelPair
			for gather, v := range []float64{1.5, 2.5, 3.5} {
				c.labels.begin()
				var got, want dto.Metric
				if err := c.constMetric(tt.desc, tt.typ, v, tt.labels...).Write(&got); err != nil {
					t.Fatal(err)
				}
				if err := prometheus.MustNewConstMetric(tt.desc, tt.typ, v, tt.labels...).Write(&want); err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(&got, &want) {
					t.Fatalf("gather %d: got %v, want %v", gather, &got, &want)
				}
				cached := len(tt.labels) <= maxCachedLabels
				if gather > 0 && len(pairs) > 0 && (&pairs[0] == &got.Label[0]) != cached {
					t.Fatalf("gather %d: pairs shared %t, want %t", gather, !cached, cached)
				}
				pairs = got.Label
			}
		})
	}
	t.Run("wrong label count panics as MustNewConstMetric does", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		c.constMetric(tests[1].desc, prometheus.CounterValue, 1, "0")
	})
}

// TestLabelCacheSweep checks that the cache holds only the series of
// recent gathers: interfaces that come and go (a container's veth at each
// gather) do not make it grow without end.
func TestLabelCacheSweep(t *testing.T) {
	c := New(DefaultConfig(), Options{})
	d := prometheus.NewDesc("node_network_up", "h", []string{"device"}, nil)
	for gather := range 10 * sweepEvery {
		c.labels.begin()
		c.constMetric(d, prometheus.GaugeValue, 1, "eth0")
		c.constMetric(d, prometheus.GaugeValue, 1, fmt.Sprintf("veth%d", gather))
	}
	if n := len(c.labels.pairs); n > 2*sweepEvery+2 {
		t.Fatalf("%d entries after %d gathers, want at most %d", n, 10*sweepEvery, 2*sweepEvery+2)
	}
	if _, ok := c.labels.pairs[labelKey{desc: d, values: [maxCachedLabels]string{"eth0"}}]; !ok {
		t.Fatal("eth0, used at every gather, was swept")
	}
}

// TestOwnFixtureGoldenCached gathers the fixture host three times and
// checks each exposition against the golden file: from the second gather
// on, the label pairs come from the cache.
func TestOwnFixtureGoldenCached(t *testing.T) {
	c, _ := ownCollector(t, ownConfig())
	for i := range 3 {
		mfs := gather(t, c)
		delete(mfs, "node_scrape_collector_duration_seconds")
		golden.Compare(t, "testdata/own/metrics.golden", exposition(t, mfs), "go test ./collectors/host -run OwnFixture")
		if i == 0 && len(c.labels.pairs) == 0 {
			t.Fatal("the first gather cached no label pairs")
		}
	}
}
