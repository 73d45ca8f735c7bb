package host

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// updateARP counts the entries of /proc/net/arp (procfs) per device. It is
// node_exporter's arp collector with --no-collector.arp.netlink; the counts
// are the same, since /proc/net/arp leaves out NOARP entries as its netlink
// reader does.
func (c *Collector) updateARP(_ context.Context, ch chan<- prometheus.Metric) error {
	fs, err := c.procFS()
	if err != nil {
		return err
	}
	entries, err := fs.GatherARPEntries()
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.procPath("net/arp"), err)
	}
	n := map[string]int{}
	for _, e := range entries {
		n[e.Device]++
	}
	d := c.desc("node_arp_entries", "ARP entries by device", "device")
	for dev, v := range n {
		if !c.cfg.ARP.selects(dev) {
			continue
		}
		ch <- c.labels.MustNew(d, prometheus.GaugeValue, float64(v), dev)
	}
	return nil
}
