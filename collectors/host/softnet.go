package host

import (
	"context"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// updateSoftnet reports /proc/net/softnet_stat (procfs) per CPU.
func (c *Collector) updateSoftnet(_ context.Context, ch chan<- prometheus.Metric) error {
	fs, err := c.procFS()
	if err != nil {
		return err
	}
	stats, err := fs.NetSoftnetStat()
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.procPath("net/softnet_stat"), err)
	}
	d := func(name, help string) *prometheus.Desc { return c.desc("node_softnet_"+name, help, "cpu") }
	for _, s := range stats {
		cpu := strconv.FormatUint(uint64(s.Index), 10)
		ch <- c.labels.MustNew(d("processed_total", "Number of processed packets"), prometheus.CounterValue, float64(s.Processed), cpu)
		ch <- c.labels.MustNew(d("dropped_total", "Number of dropped packets"), prometheus.CounterValue, float64(s.Dropped), cpu)
		ch <- c.labels.MustNew(d("times_squeezed_total", "Number of times processing packets ran out of quota"), prometheus.CounterValue, float64(s.TimeSqueezed), cpu)
		ch <- c.labels.MustNew(d("cpu_collision_total", "Number of collision occur while obtaining device lock while transmitting"), prometheus.CounterValue, float64(s.CPUCollision), cpu)
		ch <- c.labels.MustNew(d("received_rps_total", "Number of times cpu woken up received_rps"), prometheus.CounterValue, float64(s.ReceivedRps), cpu)
		ch <- c.labels.MustNew(d("flow_limit_count_total", "Number of times flow limit has been reached"), prometheus.CounterValue, float64(s.FlowLimitCount), cpu)
		ch <- c.labels.MustNew(d("backlog_len", "Softnet backlog status"), prometheus.GaugeValue, float64(s.SoftnetBacklogLen), cpu)
	}
	return nil
}
