package host

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/blockdevice"
)

// diskDescs are node_exporter's diskstats collector metrics, in the order of
// the fields of /proc/diskstats.
type diskDescs struct {
	counters                   []typedDesc
	info, fsInfo, dmInfo       *prometheus.Desc
	ataWriteCache, ataWCEnable *prometheus.Desc
	ataRotation                *prometheus.Desc
}

type typedDesc struct {
	desc *prometheus.Desc
	t    prometheus.ValueType
}

func newDiskDescs() diskDescs {
	dev := []string{"device"}
	c := func(name, help string) typedDesc {
		return typedDesc{prometheus.NewDesc("node_disk_"+name, help, dev, nil), prometheus.CounterValue}
	}
	return diskDescs{
		// Same order as the values in updateDiskstats; a kernel that
		// reports fewer fields (before 4.18: no discards; before 5.5: no
		// flushes) gets only the first ones, as in node_exporter.
		counters: []typedDesc{
			c("reads_completed_total", "The total number of reads completed successfully."),
			c("reads_merged_total", "The total number of reads merged."),
			c("read_bytes_total", "The total number of bytes read successfully."),
			c("read_time_seconds_total", "The total number of seconds spent by all reads."),
			c("writes_completed_total", "The total number of writes completed successfully."),
			c("writes_merged_total", "The number of writes merged."),
			c("written_bytes_total", "The total number of bytes written successfully."),
			c("write_time_seconds_total", "This is the total number of seconds spent by all writes."),
			{prometheus.NewDesc("node_disk_io_now", "The number of I/Os currently in progress.", dev, nil), prometheus.GaugeValue},
			c("io_time_seconds_total", "Total seconds spent doing I/Os."),
			c("io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os."),
			c("discards_completed_total", "The total number of discards completed successfully."),
			c("discards_merged_total", "The total number of discards merged."),
			c("discarded_sectors_total", "The total number of sectors discarded successfully."),
			c("discard_time_seconds_total", "This is the total number of seconds spent by all discards."),
			c("flush_requests_total", "The total number of flush requests completed successfully"),
			c("flush_requests_time_seconds_total", "This is the total number of seconds spent by all flush requests."),
		},
		info: prometheus.NewDesc("node_disk_info", "Info of /sys/block/<block_device>.",
			[]string{"device", "major", "minor", "path", "wwn", "model", "serial", "revision", "rotational"}, nil),
		fsInfo: prometheus.NewDesc("node_disk_filesystem_info", "Info about disk filesystem.",
			[]string{"device", "type", "usage", "uuid", "version"}, nil),
		dmInfo: prometheus.NewDesc("node_disk_device_mapper_info", "Info about disk device mapper.",
			[]string{"device", "name", "uuid", "vg_name", "lv_name", "lv_layer"}, nil),
		ataWriteCache: prometheus.NewDesc("node_disk_ata_write_cache", "ATA disk has a write cache.", dev, nil),
		ataWCEnable:   prometheus.NewDesc("node_disk_ata_write_cache_enabled", "ATA disk has its write cache enabled.", dev, nil),
		ataRotation:   prometheus.NewDesc("node_disk_ata_rotation_rate_rpm", "ATA disk rotation rate in RPMs (0 for SSDs).", dev, nil),
	}
}

const (
	secondsPerTick = 1.0 / 1000.0
	// Sectors in /proc/diskstats are 512 bytes whatever the device's block
	// size (Documentation/block/stat.rst).
	unixSectorSize = 512.0
)

// updateDiskstats reports every device of /proc/diskstats that the filter
// selects, from the first sample on, all-zero counters included, so that
// rate() sees a device's first I/O.
func (c *Collector) updateDiskstats(_ context.Context, ch chan<- prometheus.Metric) error {
	fs, err := c.blockFS()
	if err != nil {
		return err
	}
	stats, err := fs.ProcDiskstats()
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.procPath("diskstats"), err)
	}
	d := c.disk
	for _, s := range stats {
		dev := s.DeviceName
		if !c.cfg.Disk.selects(dev) {
			continue
		}
		info := c.udevProperties(s.MajorNumber, s.MinorNumber)
		// The serial printed on the label, else the short serial, else
		// ID_SERIAL (virtio devices), as node_exporter picks it.
		serial := info["SCSI_IDENT_SERIAL"]
		if serial == "" {
			serial = info["ID_SERIAL_SHORT"]
		}
		if serial == "" {
			serial = info["ID_SERIAL"]
		}
		ch <- c.labels.MustNew(d.info, prometheus.GaugeValue, 1, dev,
			strconv.FormatUint(uint64(s.MajorNumber), 10), strconv.FormatUint(uint64(s.MinorNumber), 10),
			info["ID_PATH"], info["ID_WWN"], info["ID_MODEL"], serial, info["ID_REVISION"], rotational(fs, dev))

		n := s.IoStatsCount - 3 // fields after major, minor and name
		for i, v := range []float64{
			float64(s.ReadIOs),
			float64(s.ReadMerges),
			float64(s.ReadSectors) * unixSectorSize,
			float64(s.ReadTicks) * secondsPerTick,
			float64(s.WriteIOs),
			float64(s.WriteMerges),
			float64(s.WriteSectors) * unixSectorSize,
			float64(s.WriteTicks) * secondsPerTick,
			float64(s.IOsInProgress),
			float64(s.IOsTotalTicks) * secondsPerTick,
			float64(s.WeightedIOTicks) * secondsPerTick,
			float64(s.DiscardIOs),
			float64(s.DiscardMerges),
			float64(s.DiscardSectors),
			float64(s.DiscardTicks) * secondsPerTick,
			float64(s.FlushRequestsCompleted),
			float64(s.TimeSpentFlushing) * secondsPerTick,
		} {
			if i >= n {
				break
			}
			ch <- c.labels.MustNew(d.counters[i].desc, d.counters[i].t, v, dev)
		}
		if t := info["ID_FS_TYPE"]; t != "" {
			ch <- c.labels.MustNew(d.fsInfo, prometheus.GaugeValue, 1, dev, t, info["ID_FS_USAGE"], info["ID_FS_UUID"], info["ID_FS_VERSION"])
		}
		if name := info["DM_NAME"]; name != "" {
			ch <- c.labels.MustNew(d.dmInfo, prometheus.GaugeValue, 1, dev, name, info["DM_UUID"], info["DM_VG_NAME"], info["DM_LV_NAME"], info["DM_LV_LAYER"])
		}
		if info["ID_ATA"] != "" {
			for attr, desc := range map[string]*prometheus.Desc{
				"ID_ATA_WRITE_CACHE":         d.ataWriteCache,
				"ID_ATA_WRITE_CACHE_ENABLED": d.ataWCEnable,
				"ID_ATA_ROTATION_RATE_RPM":   d.ataRotation,
			} {
				if v, err := strconv.ParseFloat(info[attr], 64); err == nil {
					ch <- c.labels.MustNew(desc, prometheus.GaugeValue, v, dev)
				}
			}
		}
	}
	return nil
}

// rotational is node_exporter's rotational label: "1" for a spinning disk,
// "0" otherwise or when unknown.
func rotational(fs blockdevice.FS, dev string) string {
	if r, err := fs.SysBlockDeviceRotational(dev); err == nil && r == 1 {
		return "1"
	}
	return "0"
}

// udevProperties reads the E: lines of udev's database entry of a block
// device (<rootfs>/run/udev/data/bMAJOR:MINOR). Without udev (containers,
// minimal hosts) the labels it feeds are empty, as in node_exporter.
func (c *Collector) udevProperties(major, minor uint32) map[string]string {
	f, err := os.Open(filepath.Join(c.rootfsPath("run/udev/data"), fmt.Sprintf("b%d:%d", major, minor)))
	if err != nil {
		return nil
	}
	defer f.Close()
	info := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "E:")
		if !ok {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			info[k] = v
		}
	}
	return info
}
