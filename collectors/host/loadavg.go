package host

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

func (c *Collector) updateLoadavg(_ context.Context, ch chan<- prometheus.Metric) error {
	fs, err := c.procFS()
	if err != nil {
		return err
	}
	l, err := fs.LoadAvg()
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.procPath("loadavg"), err)
	}
	ch <- mustConst(c.misc.load1, prometheus.GaugeValue, l.Load1)
	ch <- mustConst(c.misc.load5, prometheus.GaugeValue, l.Load5)
	ch <- mustConst(c.misc.load15, prometheus.GaugeValue, l.Load15)
	return nil
}
