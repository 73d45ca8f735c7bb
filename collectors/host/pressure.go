package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
)

// updatePressure reports pressure stall information (/proc/pressure/*,
// procfs) in seconds. A kernel without PSI (before 4.20, or psi=0) has
// nothing to report.
func (c *Collector) updatePressure(_ context.Context, ch chan<- prometheus.Metric) error {
	fs, err := c.procFS()
	if err != nil {
		return err
	}
	d := func(name, help string) *prometheus.Desc { return c.desc("node_pressure_"+name, help) }
	found := 0
	for _, res := range []string{"cpu", "io", "memory", "irq"} {
		v, err := fs.PSIStatsForResource(res)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // irq needs Linux 6.1 and CONFIG_IRQ_TIME_ACCOUNTING
			}
			if errors.Is(err, syscall.ENOTSUP) {
				return fmt.Errorf("%w: PSI is disabled; boot with psi=1", ErrNoData)
			}
			return fmt.Errorf("reading %s: %w", c.procPath("pressure/"+res), err)
		}
		// IRQ pressure has no "some" line.
		if (v.Some == nil && res != "irq") || (v.Full == nil && res != "cpu") {
			return fmt.Errorf("%w: %s has no some/full line", ErrNoData, c.procPath("pressure/"+res))
		}
		// µs to s in node_exporter's two steps, for its exact floats.
		sec := func(us uint64) float64 { return float64(us) / 1000.0 / 1000.0 }
		switch res {
		case "cpu":
			ch <- c.labels.MustNew(d("cpu_waiting_seconds_total", "Total time in seconds that processes have waited for CPU time"), prometheus.CounterValue, sec(v.Some.Total))
		case "io":
			ch <- c.labels.MustNew(d("io_waiting_seconds_total", "Total time in seconds that processes have waited due to IO congestion"), prometheus.CounterValue, sec(v.Some.Total))
			ch <- c.labels.MustNew(d("io_stalled_seconds_total", "Total time in seconds no process could make progress due to IO congestion"), prometheus.CounterValue, sec(v.Full.Total))
		case "memory":
			ch <- c.labels.MustNew(d("memory_waiting_seconds_total", "Total time in seconds that processes have waited for memory"), prometheus.CounterValue, sec(v.Some.Total))
			ch <- c.labels.MustNew(d("memory_stalled_seconds_total", "Total time in seconds no process could make progress due to memory congestion"), prometheus.CounterValue, sec(v.Full.Total))
		case "irq":
			ch <- c.labels.MustNew(d("irq_stalled_seconds_total", "Total time in seconds no process could make progress due to IRQ congestion"), prometheus.CounterValue, sec(v.Full.Total))
		}
		found++
	}
	if found == 0 {
		return fmt.Errorf("%w: no %s; PSI needs Linux 4.20 with CONFIG_PSI", ErrNoData, c.procPath("pressure"))
	}
	return nil
}
