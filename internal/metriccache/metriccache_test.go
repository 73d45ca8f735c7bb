package metriccache

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// TestMustNewMatchesClientGolang checks that a series whose label
// pairs come from the cache writes exactly what prometheus.MustNewConstMetric
// writes, on its first gather (a miss) and on the next ones (hits), for
// every value type the host families use, and that a hit shares the pairs
// instead of building them again.
func TestMustNewMatchesClientGolang(t *testing.T) {
	var c Cache
	tests := []struct {
		name   string
		desc   *prometheus.Desc
		typ    prometheus.ValueType
		labels []string
	}{
		{"gauge without labels", prometheus.NewDesc("g", "h", nil, nil), prometheus.GaugeValue, nil},
		{"counter with two labels", prometheus.NewDesc("c_total", "h", []string{"cpu", "mode"}, nil), prometheus.CounterValue, []string{"0", "idle"}},
		{"untyped with const labels", prometheus.NewDesc("u", "h", []string{"b", "a"}, prometheus.Labels{"z": "1"}), prometheus.UntypedValue, []string{"x", "y"}},
		{"seven labels", prometheus.NewDesc("s", "h", []string{"a", "b", "c", "d", "e", "f", "g"}, nil), prometheus.GaugeValue, []string{"1", "2", "3", "4", "5", "6", "7"}},
		{"nine labels, not cached", prometheus.NewDesc("n", "h", []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}, nil), prometheus.GaugeValue, []string{"1", "2", "3", "4", "5", "6", "7", "8", "9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pairs []*dto.LabelPair
			for gather, v := range []float64{1.5, 2.5, 3.5} {
				c.Begin()
				var got, want dto.Metric
				if err := c.MustNew(tt.desc, tt.typ, v, tt.labels...).Write(&got); err != nil {
					t.Fatal(err)
				}
				if err := prometheus.MustNewConstMetric(tt.desc, tt.typ, v, tt.labels...).Write(&want); err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(&got, &want) {
					t.Fatalf("gather %d: got %v, want %v", gather, &got, &want)
				}
				cached := len(tt.labels) <= MaxLabels
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
		c.MustNew(tests[1].desc, prometheus.CounterValue, 1, "0")
	})
}

// TestLabelCacheSweep checks that the cache holds only the series of
// recent gathers: interfaces that come and go (a container's veth at each
// gather) do not make it grow without end.
func TestLabelCacheSweep(t *testing.T) {
	var c Cache
	d := prometheus.NewDesc("node_network_up", "h", []string{"device"}, nil)
	for gather := range 10 * SweepEvery {
		c.Begin()
		c.MustNew(d, prometheus.GaugeValue, 1, "eth0")
		c.MustNew(d, prometheus.GaugeValue, 1, fmt.Sprintf("veth%d", gather))
	}
	if n := len(c.pairs); n > 2*SweepEvery+2 {
		t.Fatalf("%d entries after %d gathers, want at most %d", n, 10*SweepEvery, 2*SweepEvery+2)
	}
	if _, ok := c.pairs[labelKey{desc: d, values: [MaxLabels]string{"eth0"}}]; !ok {
		t.Fatal("eth0, used at every gather, was swept")
	}
}
