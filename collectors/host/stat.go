package host

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// updateStat reports node_exporter's stat collector: interrupts, context
// switches, forks, running and blocked processes (host.stat) and the boot
// time (host.boot_time), all from /proc/stat.
func (c *Collector) updateStat(ctx context.Context, ch chan<- prometheus.Metric) error {
	st, err := c.procStat(ctx)
	if err != nil {
		return err
	}
	m := c.misc
	if c.cfg.Stat {
		ch <- c.labels.MustNew(m.intr, prometheus.CounterValue, float64(st.IRQTotal))
		ch <- c.labels.MustNew(m.ctxt, prometheus.CounterValue, float64(st.ContextSwitches))
		ch <- c.labels.MustNew(m.forks, prometheus.CounterValue, float64(st.ProcessCreated))
		ch <- c.labels.MustNew(m.procsRunning, prometheus.GaugeValue, float64(st.ProcessesRunning))
		ch <- c.labels.MustNew(m.procsBlocked, prometheus.GaugeValue, float64(st.ProcessesBlocked))
	}
	if c.cfg.BootTime {
		ch <- c.labels.MustNew(m.bootTime, prometheus.GaugeValue, float64(st.BootTime))
	}
	return nil
}

// miscDescs are the fixed metrics of the stat and loadavg families.
type miscDescs struct {
	intr, ctxt, forks, procsRunning, procsBlocked, bootTime *prometheus.Desc
	load1, load5, load15                                    *prometheus.Desc
}

func newMiscDescs() miscDescs {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return miscDescs{
		intr:         d("node_intr_total", "Total number of interrupts serviced."),
		ctxt:         d("node_context_switches_total", "Total number of context switches."),
		forks:        d("node_forks_total", "Total number of forks."),
		procsRunning: d("node_procs_running", "Number of processes in runnable state."),
		procsBlocked: d("node_procs_blocked", "Number of processes blocked waiting for I/O to complete."),
		bootTime:     d("node_boot_time_seconds", "Node boot time, in unixtime."),
		load1:        d("node_load1", "1m load average."),
		load5:        d("node_load5", "5m load average."),
		load15:       d("node_load15", "15m load average."),
	}
}
