package host

import (
	"context"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// updateTime reports the system clock, its zone and the kernel's clock
// sources (/sys/devices/system/clocksource, procfs).
func (c *Collector) updateTime(_ context.Context, ch chan<- prometheus.Metric) error {
	now := c.now()
	zone, offset := now.Zone()
	ch <- c.labels.MustNew(c.desc("node_time_seconds", "System time in seconds since epoch (1970)."), prometheus.GaugeValue, float64(now.UnixNano())/1e9)
	ch <- c.labels.MustNew(c.desc("node_time_zone_offset_seconds", "System time zone offset in seconds.", "time_zone"), prometheus.GaugeValue, float64(offset), zone)
	fs, err := c.sysFS()
	if err != nil {
		return err
	}
	sources, err := fs.ClockSources()
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.sysPath("devices/system/clocksource"), err)
	}
	avail := c.desc("node_time_clocksource_available_info", "Available clocksources read from '/sys/devices/system/clocksource'.", "device", "clocksource")
	cur := c.desc("node_time_clocksource_current_info", "Current clocksource read from '/sys/devices/system/clocksource'.", "device", "clocksource")
	for i, s := range sources {
		dev := strconv.Itoa(i)
		for _, a := range s.Available {
			ch <- c.labels.MustNew(avail, prometheus.GaugeValue, 1, dev, a)
		}
		ch <- c.labels.MustNew(cur, prometheus.GaugeValue, 1, dev, s.Current)
	}
	return nil
}
