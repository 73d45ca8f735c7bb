package host

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// updateEntropy reports the kernel's entropy pool (/proc/sys/kernel/random,
// procfs).
func (c *Collector) updateEntropy(_ context.Context, ch chan<- prometheus.Metric) error {
	fs, err := c.procFS()
	if err != nil {
		return err
	}
	r, err := fs.KernelRandom()
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.procPath("sys/kernel/random"), err)
	}
	if r.EntropyAvaliable == nil || r.PoolSize == nil {
		return fmt.Errorf("no entropy_avail or poolsize in %s", c.procPath("sys/kernel/random"))
	}
	ch <- c.labels.MustNew(c.desc("node_entropy_available_bits", "Bits of available entropy."), prometheus.GaugeValue, float64(*r.EntropyAvaliable))
	ch <- c.labels.MustNew(c.desc("node_entropy_pool_size_bits", "Bits of entropy pool."), prometheus.GaugeValue, float64(*r.PoolSize))
	return nil
}
