package host

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

type cpuDescs struct {
	seconds, guest *prometheus.Desc
	// last holds each CPU's previous counters: /proc/stat's idle can step
	// back (a hotplug, a kernel accounting quirk) and a counter must not.
	mu   sync.Mutex
	last map[int64]procfs.CPUStat
}

func newCPUDescs() cpuDescs {
	return cpuDescs{
		seconds: prometheus.NewDesc("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", []string{"cpu", "mode"}, nil),
		guest:   prometheus.NewDesc("node_cpu_guest_seconds_total", "Seconds the CPUs spent in guests (VMs) for each mode.", []string{"cpu", "mode"}, nil),
		last:    map[int64]procfs.CPUStat{},
	}
}

// jumpBackSeconds: an idle counter that steps back by this much means the
// CPU was unplugged and plugged again; its history starts anew
// (node_exporter's rule).
const jumpBackSeconds = 3.0

func (c *Collector) updateCPU(ctx context.Context, ch chan<- prometheus.Metric) error {
	st, err := c.procStat(ctx)
	if err != nil {
		return err
	}
	if len(st.CPU) == 0 {
		return fmt.Errorf("no per-CPU lines in %s; is agent.paths.proc a procfs?", c.procPath("stat"))
	}
	d := &c.cpu
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, n := range st.CPU {
		o := d.last[id]
		if o.Idle-n.Idle >= jumpBackSeconds {
			o = procfs.CPUStat{}
		}
		keep := func(old *float64, v float64) {
			if v >= *old {
				*old = v
			}
		}
		keep(&o.User, n.User)
		keep(&o.Nice, n.Nice)
		keep(&o.System, n.System)
		keep(&o.Idle, n.Idle)
		keep(&o.Iowait, n.Iowait)
		keep(&o.IRQ, n.IRQ)
		keep(&o.SoftIRQ, n.SoftIRQ)
		keep(&o.Steal, n.Steal)
		keep(&o.Guest, n.Guest)
		keep(&o.GuestNice, n.GuestNice)
		d.last[id] = o
		cpu := strconv.FormatInt(id, 10)
		for _, m := range []struct {
			mode string
			v    float64
		}{
			{"user", o.User}, {"nice", o.Nice}, {"system", o.System}, {"idle", o.Idle},
			{"iowait", o.Iowait}, {"irq", o.IRQ}, {"softirq", o.SoftIRQ}, {"steal", o.Steal},
		} {
			ch <- c.labels.MustNew(d.seconds, prometheus.CounterValue, m.v, cpu, m.mode)
		}
		// Guest time is also counted in user and nice, as the kernel does.
		ch <- c.labels.MustNew(d.guest, prometheus.CounterValue, o.Guest, cpu, "user")
		ch <- c.labels.MustNew(d.guest, prometheus.CounterValue, o.GuestNice, cpu, "nice")
	}
	for id := range d.last {
		if _, ok := st.CPU[id]; !ok {
			delete(d.last, id) // offline now
		}
	}
	return nil
}
