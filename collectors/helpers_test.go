package collectors

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// collect runs c.Update and returns every sample as `name{k="v",...}` →
// value, labels sorted by name.
func collect(t *testing.T, c Collector) map[string]float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1024)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Update(context.Background(), ch)
		close(ch)
	}()
	out := map[string]float64{}
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatalf("writing metric: %v", err)
		}
		name := descName(m.Desc())
		var ls []string
		for _, l := range pb.GetLabel() {
			ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		sort.Strings(ls)
		key := name
		if len(ls) > 0 {
			key += "{" + strings.Join(ls, ",") + "}"
		}
		switch {
		case pb.Gauge != nil:
			out[key] = pb.Gauge.GetValue()
		case pb.Counter != nil:
			out[key] = pb.Counter.GetValue()
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("Update: %v", err)
	}
	return out
}

func descName(d *prometheus.Desc) string {
	s := d.String()
	_, rest, _ := strings.Cut(s, `fqName: "`)
	name, _, _ := strings.Cut(rest, `"`)
	return name
}

// decodeConfig reads a collectors config written as YAML, with defaults.
func decodeConfig(t *testing.T, src string) Config {
	t.Helper()
	cfg := DefaultConfig()
	if err := yamlx.Decode("test.yaml", []byte(src), &cfg); err != nil {
		t.Fatalf("decoding config:\n%v", err)
	}
	return cfg
}
