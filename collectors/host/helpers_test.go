package host

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// adapter registers one host collector in a registry for a test.
type adapter struct {
	t *testing.T
	c *Collector
}

func (a adapter) Describe(chan<- *prometheus.Desc) {}
func (a adapter) Collect(ch chan<- prometheus.Metric) {
	if err := a.c.Update(context.Background(), ch); err != nil {
		a.t.Errorf("Update: %v", err)
	}
}

// gather runs c once through a pedantic registry, which fails on anything
// a Prometheus scrape would refuse (duplicate series, inconsistent labels or
// help), and returns the families by name.
func gather(t *testing.T, c *Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(adapter{t, c})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// exposition returns the text format of families, sorted as a registry
// sorts them.
func exposition(t *testing.T, mfs map[string]*dto.MetricFamily) string {
	t.Helper()
	names := make([]string, 0, len(mfs))
	for n := range mfs {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, n := range names {
		if err := enc.Encode(mfs[n]); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

// parseExposition parses a text exposition file into families.
func parseExposition(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	return mfs
}

// samples renders a family's samples as `{k="v",...} value` lines, sorted,
// so that two families compare as text.
func samples(mf *dto.MetricFamily) []string {
	var out []string
	for _, m := range mf.Metric {
		var ls []string
		for _, l := range m.Label {
			if l.GetValue() != "" { // an empty label is no label
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
		}
		sort.Strings(ls)
		var v float64
		switch {
		case m.Gauge != nil:
			v = m.Gauge.GetValue()
		case m.Counter != nil:
			v = m.Counter.GetValue()
		case m.Untyped != nil:
			v = m.Untyped.GetValue()
		case m.Summary != nil:
			v = m.Summary.GetSampleSum()
		case m.Histogram != nil:
			v = m.Histogram.GetSampleSum()
		}
		out = append(out, fmt.Sprintf("{%s} %g", strings.Join(ls, ","), v))
	}
	sort.Strings(out)
	return out
}

func abs(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
