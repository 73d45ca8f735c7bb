package host

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// updateUname reports node_uname_info from the uname system call. Grafana's
// "Node Exporter Full" fills its job, nodename and instance variables from
// this series: without it every panel of that dashboard is empty.
func (c *Collector) updateUname(_ context.Context, ch chan<- prometheus.Metric) error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	d := c.desc("node_uname_info", "Labeled system information as provided by the uname system call.",
		"sysname", "release", "version", "machine", "nodename", "domainname")
	ch <- c.labels.MustNew(d, prometheus.GaugeValue, 1,
		unix.ByteSliceToString(u.Sysname[:]), unix.ByteSliceToString(u.Release[:]),
		unix.ByteSliceToString(u.Version[:]), unix.ByteSliceToString(u.Machine[:]),
		unix.ByteSliceToString(u.Nodename[:]), unix.ByteSliceToString(u.Domainname[:]))
	return nil
}
