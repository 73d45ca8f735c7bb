package host

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// updateTextfile reads every *.prom file of host.textfile.directory (a glob
// is allowed, as in node_exporter) with Prometheus' text parser at gather
// time and re-exports its metrics, plus node_textfile_mtime_seconds{file}
// for each file read and node_textfile_scrape_error (1 if a directory or a
// file could not be read or parsed, or files conflict).
//
// A bad file never breaks the gather: a file that does not parse, or that
// carries client-side timestamps, is skipped whole; a family whose help or
// type differs from the same family in an earlier file, and a series that an
// earlier file already gave, are skipped; each sets the error metric and is
// logged. Families of one name from several files are merged, their label
// sets padded with empty values, as node_exporter pads them.
func (c *Collector) updateTextfile(_ context.Context, ch chan<- prometheus.Metric) error {
	errored := false
	fail := func(msg string, args ...any) {
		errored = true
		c.logger.Error(msg, args...)
	}
	var dirs []string
	if d := c.cfg.Textfile.Directory; d != "" {
		dirs, _ = filepath.Glob(d)
		if len(dirs) == 0 {
			dirs = []string{d} // not a glob, or nothing matched: let ReadDir say why
		}
	}
	type merged struct {
		mf    *dto.MetricFamily
		files []string
	}
	families := map[string]*merged{}
	var order []string
	mtimes := map[string]time.Time{}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			fail("Cannot read the textfile directory; set host.textfile.directory to a readable directory", "path", dir, "err", err)
			continue
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".prom") {
				continue
			}
			path := filepath.Join(dir, e.Name())
			mtime, mfs, err := readTextfile(path)
			if err != nil {
				fail("Skipping a textfile", "file", path, "err", err)
				continue
			}
			names := make([]string, 0, len(mfs))
			for n := range mfs {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				mf := mfs[n]
				m, ok := families[n]
				if !ok {
					families[n] = &merged{mf: mf, files: []string{path}}
					order = append(order, n)
					continue
				}
				if mf.GetType() != m.mf.GetType() || (mf.Help != nil && m.mf.Help != nil && mf.GetHelp() != m.mf.GetHelp()) {
					fail("Skipping a metric family whose type or help differs from an earlier file", "metric", n, "file", path, "earlier_file", m.files[0])
					continue
				}
				if m.mf.Help == nil {
					m.mf.Help = mf.Help
				}
				m.mf.Metric = append(m.mf.Metric, mf.Metric...)
				m.files = append(m.files, path)
			}
			mtimes[path] = mtime
		}
	}
	for _, n := range order {
		m := families[n]
		if m.mf.Help == nil {
			help := "Metric read from " + strings.Join(m.files, ", ")
			m.mf.Help = &help
		}
		if dup := c.exportFamily(m.mf, ch); dup != "" {
			fail("Skipping a series given twice by the textfiles", "metric", n, "series", dup, "files", strings.Join(m.files, ", "))
		}
	}
	paths := make([]string, 0, len(mtimes))
	for p := range mtimes {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	mtimeD := c.desc("node_textfile_mtime_seconds", "Unixtime mtime of textfiles successfully read.", "file")
	for _, p := range paths {
		ch <- c.labels.MustNew(mtimeD, prometheus.GaugeValue, float64(mtimes[p].Unix()), p)
	}
	v := 0.0
	if errored {
		v = 1
	}
	ch <- c.labels.MustNew(c.desc("node_textfile_scrape_error", "1 if there was an error opening or reading a file, 0 otherwise"), prometheus.GaugeValue, v)
	return nil
}

// maxTextfileBytes caps one *.prom file, as the agent caps every file it
// reads (a rule file may have 16 MiB): a runaway cron job must not take the
// agent's memory.
const maxTextfileBytes = 16 << 20

// readTextfile parses one file. It must be a regular file: a FIFO named
// x.prom would block the gather until someone writes to it. It is opened
// non-blocking for that reason and checked before any read. Its mtime is
// taken after the parse, so that a file that fails does not look fresh.
func readTextfile(path string) (time.Time, map[string]*dto.MetricFamily, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return time.Time{}, nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return time.Time{}, nil, err
	} else if !st.Mode().IsRegular() {
		return time.Time{}, nil, fmt.Errorf("not a regular file (%s); textfiles must be plain files", st.Mode().Type())
	} else if st.Size() > maxTextfileBytes {
		return time.Time{}, nil, fmt.Errorf("%d bytes, over the %d MiB a textfile may have", st.Size(), maxTextfileBytes>>20)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	// The size was checked, but a file can grow while it is read.
	mfs, err := p.TextToMetricFamilies(io.LimitReader(f, maxTextfileBytes))
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("parsing: %w", err)
	}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			if m.TimestampMs != nil {
				return time.Time{}, nil, fmt.Errorf("client-side timestamps are not supported; the whole file is skipped")
			}
		}
	}
	st, err := f.Stat()
	if err != nil {
		return time.Time{}, nil, err
	}
	return st.ModTime(), mfs, nil
}

// exportFamily sends mf's metrics with the union of its label names (absent
// ones empty). It returns the first series met twice, which it skips.
func (c *Collector) exportFamily(mf *dto.MetricFamily, ch chan<- prometheus.Metric) (dup string) {
	var names []string
	for _, m := range mf.Metric {
		for _, l := range m.Label {
			if !slices.Contains(names, l.GetName()) {
				names = append(names, l.GetName())
			}
		}
	}
	sort.Strings(names)
	desc := prometheus.NewDesc(mf.GetName(), mf.GetHelp(), names, nil)
	seen := map[string]bool{}
	for _, m := range mf.Metric {
		values := make([]string, len(names))
		for _, l := range m.Label {
			values[slices.Index(names, l.GetName())] = l.GetValue()
		}
		key := strings.Join(values, "\xff")
		if seen[key] {
			if dup == "" {
				dup = mf.GetName() + "{" + strings.Join(values, ",") + "}"
			}
			continue
		}
		seen[key] = true
		var (
			metric prometheus.Metric
			err    error
		)
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			metric, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, m.GetCounter().GetValue(), values...)
		case dto.MetricType_GAUGE:
			metric, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, m.GetGauge().GetValue(), values...)
		case dto.MetricType_SUMMARY:
			q := map[float64]float64{}
			for _, x := range m.GetSummary().GetQuantile() {
				q[x.GetQuantile()] = x.GetValue()
			}
			metric, err = prometheus.NewConstSummary(desc, m.GetSummary().GetSampleCount(), m.GetSummary().GetSampleSum(), q, values...)
		case dto.MetricType_HISTOGRAM:
			b := map[float64]uint64{}
			for _, x := range m.GetHistogram().GetBucket() {
				b[x.GetUpperBound()] = x.GetCumulativeCount()
			}
			metric, err = prometheus.NewConstHistogram(desc, m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum(), b, values...)
		default:
			metric, err = prometheus.NewConstMetric(desc, prometheus.UntypedValue, m.GetUntyped().GetValue(), values...)
		}
		if err != nil {
			c.logger.Error("Skipping a textfile series", "metric", mf.GetName(), "err", err)
			continue
		}
		ch <- metric
	}
	return dup
}
