package host

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

// updateUDPQueues sums the queues of /proc/net/udp and udp6 (procfs).
func (c *Collector) updateUDPQueues(_ context.Context, ch chan<- prometheus.Metric) error {
	fs, err := c.procFS()
	if err != nil {
		return err
	}
	d := c.desc("node_udp_queues", "Number of allocated memory in the kernel for UDP datagrams in bytes.", "queue", "ip")
	s4, err4 := fs.NetUDPSummary()
	if err4 == nil {
		ch <- c.labels.MustNew(d, prometheus.GaugeValue, float64(s4.TxQueueLength), "tx", "v4")
		ch <- c.labels.MustNew(d, prometheus.GaugeValue, float64(s4.RxQueueLength), "rx", "v4")
	} else if !errors.Is(err4, os.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", c.procPath("net/udp"), err4)
	}
	s6, err6 := fs.NetUDP6Summary()
	if err6 == nil {
		ch <- c.labels.MustNew(d, prometheus.GaugeValue, float64(s6.TxQueueLength), "tx", "v6")
		ch <- c.labels.MustNew(d, prometheus.GaugeValue, float64(s6.RxQueueLength), "rx", "v6")
	} else if !errors.Is(err6, os.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", c.procPath("net/udp6"), err6)
	}
	if err4 != nil && err6 != nil {
		return ErrNoData
	}
	return nil
}
