package host

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// updateFilefd reports /proc/sys/fs/file-nr: allocated file handles and the
// system-wide maximum (the middle field is always 0 since Linux 2.6).
func (c *Collector) updateFilefd(_ context.Context, ch chan<- prometheus.Metric) error {
	path := c.procPath("sys/fs/file-nr")
	data, release, err := readFile(path)
	defer release()
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	f := strings.Split(strings.TrimSpace(string(data)), "\t")
	if len(f) < 3 {
		return fmt.Errorf("%s: want 3 tab-separated fields, got %q", path, data)
	}
	for _, kv := range [][2]string{{"allocated", f[0]}, {"maximum", f[2]}} {
		v, err := strconv.ParseFloat(kv[1], 64)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", path, kv[0], err)
		}
		ch <- c.labels.MustNew(c.desc("node_filefd_"+kv[0], "File descriptor statistics: "+kv[0]+"."), prometheus.GaugeValue, v)
	}
	return nil
}
