package host

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

// updateMdadm reports software RAID arrays from /proc/mdstat and
// /sys/block/md*/md (procfs). node-mixin's NodeRAIDDegraded and
// NodeRAIDDiskFailure read node_md_disks_required, node_md_disks{state}.
func (c *Collector) updateMdadm(_ context.Context, ch chan<- prometheus.Metric) error {
	fs, err := c.procFS()
	if err != nil {
		return err
	}
	stats, err := fs.MDStat()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: no %s", ErrNoData, c.procPath("mdstat"))
		}
		return fmt.Errorf("parsing %s: %w", c.procPath("mdstat"), err)
	}
	g := func(name, help string, v float64, labels ...string) {
		names := []string{"device"}
		if len(labels) > 1 {
			names = append(names, "state")
		}
		ch <- c.labels.MustNew(c.desc("node_md_"+name, help, names...), prometheus.GaugeValue, v, labels...)
	}
	for _, s := range stats {
		g("disks_required", "Total number of disks of device.", float64(s.DisksTotal), s.Name)
		g("disks", "Number of active/failed/spare disks of device.", float64(s.DisksActive), s.Name, "active")
		g("disks", "Number of active/failed/spare disks of device.", float64(s.DisksFailed), s.Name, "failed")
		g("disks", "Number of active/failed/spare disks of device.", float64(s.DisksSpare), s.Name, "spare")
		for _, st := range [][2]string{{"active", "active"}, {"inactive", "inactive"}, {"recovering", "recovering"}, {"resync", "resyncing"}, {"check", "checking"}} {
			v := 0.0
			if s.ActivityState == st[1] {
				v = 1
			}
			g("state", "Indicates the state of md-device.", v, s.Name, st[0])
		}
		g("blocks", "Total number of blocks on device.", float64(s.BlocksTotal), s.Name)
		g("blocks_synced", "Number of blocks synced on device.", float64(s.BlocksSynced), s.Name)
	}
	sfs, err := c.sysFS()
	if err != nil {
		return err
	}
	raids, err := sfs.Mdraids()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: no md arrays under %s", ErrNoData, c.sysPath("block"))
		}
		return fmt.Errorf("reading md arrays under %s: %w", c.sysPath("block"), err)
	}
	for _, r := range raids {
		if r.Disks != nil {
			g("raid_disks", "Number of raid disks on device.", float64(*r.Disks), r.Device)
		}
		g("degraded", "Number of degraded disks on device.", float64(r.DegradedDisks), r.Device)
	}
	return nil
}
