package host

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// netdevDescs are node_exporter's netdev metrics, named as its default
// (non-"detailed") mode names them.
type netdevDescs struct {
	byKey map[string]*prometheus.Desc
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
		for k, v := range map[string]uint64{
			"receive_bytes": s.RxBytes, "receive_packets": s.RxPackets, "receive_errs": s.RxErrors,
			"receive_drop": s.RxDropped, "receive_fifo": s.RxFIFO, "receive_frame": s.RxFrame,
			"receive_compressed": s.RxCompressed, "receive_multicast": s.RxMulticast,
			"transmit_bytes": s.TxBytes, "transmit_packets": s.TxPackets, "transmit_errs": s.TxErrors,
			"transmit_drop": s.TxDropped, "transmit_fifo": s.TxFIFO, "transmit_colls": s.TxCollisions,
			"transmit_carrier": s.TxCarrier, "transmit_compressed": s.TxCompressed,
		} {
			ch <- mustConst(c.netdev.byKey[k], prometheus.CounterValue, float64(v), name)
		}
		if v, err := readUint(filepath.Join(c.sysPath("class/net"), name, "statistics/rx_nohandler")); err == nil {
			ch <- mustConst(c.netdev.byKey["receive_nohandler"], prometheus.CounterValue, float64(v), name)
		}
	}
	return nil
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}
