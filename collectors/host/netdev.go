package host

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// netdevDescs are node_exporter's netdev metrics, named as its default
// (non-"detailed") mode names them.
type netdevDescs struct {
	byKey map[string]*prometheus.Desc
	// procNetDev: the columns of /proc/net/dev, in order.
	procNetDev []*prometheus.Desc
}

var netdevKeys = []string{
	"receive_bytes", "receive_packets", "receive_errs", "receive_drop", "receive_fifo",
	"receive_frame", "receive_compressed", "receive_multicast", "receive_nohandler",
	"transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop", "transmit_fifo",
	"transmit_colls", "transmit_carrier", "transmit_compressed",
}

func newNetdevDescs() netdevDescs {
	d := netdevDescs{byKey: map[string]*prometheus.Desc{}}
	for _, k := range netdevKeys {
		d.byKey[k] = prometheus.NewDesc("node_network_"+k+"_total", "Network device statistic "+k+".", []string{"device"}, nil)
	}
	for _, k := range []string{
		"receive_bytes", "receive_packets", "receive_errs", "receive_drop", "receive_fifo", "receive_frame", "receive_compressed", "receive_multicast",
		"transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop", "transmit_fifo", "transmit_colls", "transmit_carrier", "transmit_compressed",
	} {
		d.procNetDev = append(d.procNetDev, d.byKey[k])
	}
	return d
}

// updateNetdev reports the interface counters of /proc/net/dev (parsed by
// procfs), whose columns are the kernel's sums that node_exporter's netlink
// reader adds up the same way (drop = dropped + missed, frame = length +
// over + crc + frame, carrier = carrier + aborted + heartbeat + window).
// receive_nohandler, which /proc/net/dev lacks, comes from the interface's
// statistics in sysfs.
func (c *Collector) updateNetdev(_ context.Context, ch chan<- prometheus.Metric) error {
	fs, err := c.procFS()
	if err != nil {
		return err
	}
	devs, err := fs.NetDev()
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.procPath("net/dev"), err)
	}
	for name, s := range devs {
		if !c.cfg.Network.selects(name) {
			continue
		}
		for i, v := range [...]uint64{
			s.RxBytes, s.RxPackets, s.RxErrors, s.RxDropped, s.RxFIFO, s.RxFrame, s.RxCompressed, s.RxMulticast,
			s.TxBytes, s.TxPackets, s.TxErrors, s.TxDropped, s.TxFIFO, s.TxCollisions, s.TxCarrier, s.TxCompressed,
		} {
			ch <- c.labels.MustNew(c.netdev.procNetDev[i], prometheus.CounterValue, float64(v), name)
		}
		if v, err := readUint(filepath.Join(c.sysPath("class/net"), name, "statistics/rx_nohandler")); err == nil {
			ch <- c.labels.MustNew(c.netdev.byKey["receive_nohandler"], prometheus.CounterValue, float64(v), name)
		}
	}
	return nil
}

func readUint(path string) (uint64, error) {
	b, release, err := readFile(path)
	defer release()
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
}
