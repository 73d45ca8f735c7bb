package host

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

var pageSize = os.Getpagesize()

// updateSockstat reports /proc/net/sockstat and sockstat6 (procfs) as
// node_sockstat_<PROTO>_<field>, with mem also in bytes, as node_exporter.
func (c *Collector) updateSockstat(_ context.Context, ch chan<- prometheus.Metric) error {
	fs, err := c.procFS()
	if err != nil {
		return err
	}
	s4, err := fs.NetSockstat()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", c.procPath("net/sockstat"), err)
	}
	s6, err := fs.NetSockstat6()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", c.procPath("net/sockstat6"), err)
	}
	if s4 != nil && s4.Used != nil {
		ch <- c.labels.MustNew(c.desc("node_sockstat_sockets_used", "Number of IPv4 sockets in use."), prometheus.GaugeValue, float64(*s4.Used))
	}
	for _, s := range []*procfs.NetSockstat{s4, s6} {
		if s == nil {
			continue
		}
		for _, p := range s.Protocols {
			emit := func(field string, v *int) {
				if v != nil {
					name := fmt.Sprintf("node_sockstat_%s_%s", p.Protocol, field)
					help := fmt.Sprintf("Number of %s sockets in state %s.", p.Protocol, field)
					ch <- c.labels.MustNew(c.desc(name, help), prometheus.GaugeValue, float64(*v))
				}
			}
			emit("inuse", &p.InUse)
			emit("orphan", p.Orphan)
			emit("tw", p.TW)
			emit("alloc", p.Alloc)
			emit("mem", p.Mem)
			emit("memory", p.Memory)
			if p.Mem != nil {
				b := *p.Mem * pageSize // mem counts pages
				emit("mem_bytes", &b)
			}
		}
	}
	return nil
}
