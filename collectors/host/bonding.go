package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// updateBonding reports configured and active (MII "up") slaves of every
// bonding master under /sys/class/net, node_exporter's own reading; node-mixin's
// NodeBondingDegraded compares the two.
func (c *Collector) updateBonding(_ context.Context, ch chan<- prometheus.Metric) error {
	root := c.sysPath("class/net")
	masters, err := os.ReadFile(filepath.Join(root, "bonding_masters"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: no bonding (no %s)", ErrNoData, filepath.Join(root, "bonding_masters"))
		}
		return fmt.Errorf("reading %s: %w", filepath.Join(root, "bonding_masters"), err)
	}
	slavesD := c.desc("node_bonding_slaves", "Number of configured slaves per bonding interface.", "master")
	activeD := c.desc("node_bonding_active", "Number of active slaves per bonding interface.", "master")
	for _, master := range strings.Fields(string(masters)) {
		slaves, err := os.ReadFile(filepath.Join(root, master, "bonding", "slaves"))
		if err != nil {
			return fmt.Errorf("reading slaves of %s: %w", master, err)
		}
		var n, active int
		for _, slave := range strings.Fields(string(slaves)) {
			state, err := os.ReadFile(filepath.Join(root, master, "lower_"+slave, "bonding_slave", "mii_status"))
			if errors.Is(err, os.ErrNotExist) {
				// Older kernels name the link slave_<name>.
				state, err = os.ReadFile(filepath.Join(root, master, "slave_"+slave, "bonding_slave", "mii_status"))
			}
			if err != nil {
				return fmt.Errorf("reading MII status of %s in %s: %w", slave, master, err)
			}
			n++
			if strings.TrimSpace(string(state)) == "up" {
				active++
			}
		}
		ch <- c.labels.MustNew(slavesD, prometheus.GaugeValue, float64(n), master)
		ch <- c.labels.MustNew(activeD, prometheus.GaugeValue, float64(active), master)
	}
	return nil
}
