package host

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

func (c *Collector) updateLoadavg(_ context.Context, ch chan<- prometheus.Metric) error {
	l, err := LoadAvg(c.paths.Proc)
	if err != nil {
		return err
	}
	ch <- c.labels.MustNew(c.misc.load1, prometheus.GaugeValue, l.Load1)
	ch <- c.labels.MustNew(c.misc.load5, prometheus.GaugeValue, l.Load5)
	ch <- c.labels.MustNew(c.misc.load15, prometheus.GaugeValue, l.Load15)
	return nil
}

// LoadAvg reads proc/loadavg (proc is the host's /proc) with procfs: the
// one reader of the load average, for node_load* and for an alert's
// evidence.
func LoadAvg(proc string) (*procfs.LoadAvg, error) {
	fs, err := procfs.NewFS(proc)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w; is agent.paths.proc a procfs?", proc, err)
	}
	l, err := fs.LoadAvg()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(proc, "loadavg"), err)
	}
	return l, nil
}
