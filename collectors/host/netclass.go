package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// netclassInts are the numeric attributes of /sys/class/net/<iface> that
// node_exporter's netclass collector reports, by metric name suffix.
var netclassInts = []struct{ file, metric string }{
	{"addr_assign_type", "address_assign_type"},
	{"carrier", "carrier"},
	{"carrier_changes", "carrier_changes_total"},
	{"carrier_up_count", "carrier_up_changes_total"},
	{"carrier_down_count", "carrier_down_changes_total"},
	{"dev_id", "device_id"},
	{"dormant", "dormant"},
	{"flags", "flags"},
	{"ifindex", "iface_id"},
	{"iflink", "iface_link"},
	{"link_mode", "iface_link_mode"},
	{"mtu", "mtu_bytes"},
	{"name_assign_type", "name_assign_type"},
	{"netdev_group", "net_dev_group"},
	{"speed", "speed_bytes"},
	{"tx_queue_len", "transmit_queue_length"},
	{"type", "protocol_type"},
}

// updateNetClass reports node_exporter's netclass collector: the attributes
// of every interface under /sys/class/net, such as node_network_up,
// node_network_info, node_network_mtu_bytes and node_network_speed_bytes.
//
// It reads the same files and parses them as procfs' sysfs.NetClassByIface
// does (integers in any base, an attribute the driver refuses is absent),
// but only the attributes reported, each with openat/read/close: procfs
// reads every file of the directory through os.Open, which made this
// family a third of the host collector's cost.
func (c *Collector) updateNetClass(_ context.Context, ch chan<- prometheus.Metric) error {
	root := c.sysPath("class/net")
	entries, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("%w: %v", ErrNoData, err)
		}
		return fmt.Errorf("listing %s: %w", root, err)
	}
	up := c.desc("node_network_up", "Value is 1 if operstate is 'up', 0 otherwise.", "device")
	info := c.desc("node_network_info", "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
		"device", "address", "broadcast", "duplex", "operstate", "adminstate", "ifalias")
	var buf [256]byte
	for _, e := range entries {
		dev := e.Name()
		if e.Type().IsRegular() || !c.cfg.NetClass.selects(dev) {
			continue // bonding_masters is a file
		}
		dir, err := unix.Open(filepath.Join(root, dev), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // the interface went away while we listed
			}
			return fmt.Errorf("opening %s: %w", filepath.Join(root, dev), err)
		}
		read := func(name string) ([]byte, bool, error) {
			v, err := readAttr(dir, name, buf[:])
			if err != nil {
				if ignorableAttrErr(err) {
					return nil, false, nil
				}
				return nil, false, fmt.Errorf("reading %s: %w", filepath.Join(root, dev, name), err)
			}
			return v, true, nil
		}
		err = func() error {
			defer unix.Close(dir)
			str := func(name string) (string, error) {
				v, _, err := read(name)
				return string(v), err
			}
			operstate, err := str("operstate")
			if err != nil {
				return err
			}
			var labels [4]string
			for i, n := range []string{"address", "broadcast", "duplex", "ifalias"} {
				if labels[i], err = str(n); err != nil {
					return err
				}
			}
			v := 0.0
			if operstate == "up" {
				v = 1
			}
			ch <- c.labels.MustNew(up, prometheus.GaugeValue, v, dev)
			admin := "unknown"
			for _, a := range netclassInts {
				raw, ok, err := read(a.file)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				n, err := strconv.ParseInt(string(raw), 0, 64)
				if err != nil {
					continue // unparsable: absent, as with procfs
				}
				if a.file == "flags" {
					admin = "down"
					if n&int64(net.FlagUp) != 0 {
						admin = "up"
					}
				}
				t := prometheus.GaugeValue
				if a.metric == "carrier_changes_total" || a.metric == "carrier_up_changes_total" || a.metric == "carrier_down_changes_total" {
					t = prometheus.CounterValue
				}
				f := float64(n)
				if a.file == "speed" {
					// Mbit/s to bytes/s; -1 (unknown) becomes -125000, as
					// node_exporter reports it by default.
					f = float64(n * 1000 * 1000 / 8)
				}
				ch <- c.labels.MustNew(c.desc("node_network_"+a.metric, "Network device property: "+a.metric, "device"), t, f, dev)
			}
			ch <- c.labels.MustNew(info, prometheus.GaugeValue, 1, dev, labels[0], labels[1], labels[2], operstate, admin, labels[3])
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// readAttr reads a small sysfs attribute relative to an open directory,
// trimmed, into buf, with one read as sysfs serves it.
func readAttr(dir int, name string, buf []byte) ([]byte, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return nil, err
	}
	return bytes.TrimSpace(buf[:n]), nil
}

// ignorableAttrErr: attributes a device does not have or a driver refuses
// to give (speed of a virtual device: EINVAL), as procfs ignores them.
func ignorableAttrErr(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)
}
