package host

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// updateVmstat reports the /proc/vmstat fields that host.vmstat.fields
// selects (node_exporter's default: oom_kill, pgpg*, pswp*, pg*fault), as
// untyped node_vmstat_<field>, node_exporter's own parsing.
func (c *Collector) updateVmstat(_ context.Context, ch chan<- prometheus.Metric) error {
	data, release, err := readFile(c.procPath("vmstat"))
	defer release()
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.procPath("vmstat"), err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		parts := strings.Fields(sc.Text())
		if len(parts) != 2 || !c.fieldSelected(&c.vmstatFields, c.cfg.Vmstat.Fields.Regexp, parts[0]) {
			continue
		}
		v, err := strconv.ParseFloat(parts[1], 64)
		if err != nil {
			return fmt.Errorf("value of %s in %s: %w", parts[0], c.procPath("vmstat"), err)
		}
		name := "node_vmstat_" + parts[0]
		ch <- c.labels.MustNew(c.desc(name, "/proc/vmstat information field "+parts[0]+"."), prometheus.UntypedValue, v)
	}
	return sc.Err()
}
