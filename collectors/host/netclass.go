package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

// updateNetClass reports node_exporter's netclass collector: the attributes
// of every interface under /sys/class/net (procfs' sysfs parser), such as
// node_network_up, node_network_info, node_network_mtu_bytes and
// node_network_speed_bytes.
func (c *Collector) updateNetClass(_ context.Context, ch chan<- prometheus.Metric) error {
	fs, err := c.sysFS()
	if err != nil {
		return err
	}
	devices, err := fs.NetClassDevices()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("%w: %v", ErrNoData, err)
		}
		return fmt.Errorf("listing %s: %w", c.sysPath("class/net"), err)
	}
	up := c.desc("node_network_up", "Value is 1 if operstate is 'up', 0 otherwise.", "device")
	info := c.desc("node_network_info", "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
		"device", "address", "broadcast", "duplex", "operstate", "adminstate", "ifalias")
	for _, dev := range devices {
		if !c.cfg.NetClass.selects(dev) {
			continue
		}
		i, err := fs.NetClassByIface(dev)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the interface went away while we listed
			}
			return fmt.Errorf("reading %s: %w", c.sysPath("class/net/"+dev), err)
		}
		v := 0.0
		if i.OperState == "up" {
			v = 1
		}
		ch <- mustConst(up, prometheus.GaugeValue, v, i.Name)
		admin := "unknown"
		if i.Flags != nil {
			admin = "down"
			if *i.Flags&int64(net.FlagUp) != 0 {
				admin = "up"
			}
		}
		ch <- mustConst(info, prometheus.GaugeValue, 1, i.Name, i.Address, i.Broadcast, i.Duplex, i.OperState, admin, i.IfAlias)
		g := func(name string, p *int64, t prometheus.ValueType) {
			if p != nil {
				ch <- mustConst(c.desc("node_network_"+name, "Network device property: "+name, "device"), t, float64(*p), i.Name)
			}
		}
		g("address_assign_type", i.AddrAssignType, prometheus.GaugeValue)
		g("carrier", i.Carrier, prometheus.GaugeValue)
		g("carrier_changes_total", i.CarrierChanges, prometheus.CounterValue)
		g("carrier_up_changes_total", i.CarrierUpCount, prometheus.CounterValue)
		g("carrier_down_changes_total", i.CarrierDownCount, prometheus.CounterValue)
		g("device_id", i.DevID, prometheus.GaugeValue)
		g("dormant", i.Dormant, prometheus.GaugeValue)
		g("flags", i.Flags, prometheus.GaugeValue)
		g("iface_id", i.IfIndex, prometheus.GaugeValue)
		g("iface_link", i.IfLink, prometheus.GaugeValue)
		g("iface_link_mode", i.LinkMode, prometheus.GaugeValue)
		g("mtu_bytes", i.MTU, prometheus.GaugeValue)
		g("name_assign_type", i.NameAssignType, prometheus.GaugeValue)
		g("net_dev_group", i.NetDevGroup, prometheus.GaugeValue)
		if i.Speed != nil {
			// -1 (unknown speed) is reported as node_exporter does by
			// default: -125000 bytes/s.
			speed := *i.Speed * 1000 * 1000 / 8
			g("speed_bytes", &speed, prometheus.GaugeValue)
		}
		g("transmit_queue_length", i.TxQueueLen, prometheus.GaugeValue)
		g("protocol_type", i.Type, prometheus.GaugeValue)
	}
	return nil
}
