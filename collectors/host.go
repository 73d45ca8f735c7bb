package collectors

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/net"

	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// HostConfig switches the parts of the host collector and filters
// filesystems and devices. Every part is on by default.
type HostConfig struct {
	CPU        bool             `yaml:"cpu"`
	Load       bool             `yaml:"load"`
	Memory     bool             `yaml:"memory"`
	BootTime   bool             `yaml:"boot_time"`
	Filesystem FilesystemConfig `yaml:"filesystem"`
	Disk       DeviceConfig     `yaml:"disk"`
	Network    DeviceConfig     `yaml:"network"`
}

// FilesystemConfig selects the filesystems reported. A filesystem is
// reported when it is a real one (not listed as "nodev" in
// /proc/filesystems), matches the include expressions (when set) and none of
// the exclude expressions. The default excludes are node_exporter's.
type FilesystemConfig struct {
	Enabled            bool         `yaml:"enabled"`
	MountPointsInclude yamlx.Regexp `yaml:"mount_points_include"`
	MountPointsExclude yamlx.Regexp `yaml:"mount_points_exclude"`
	FSTypesInclude     yamlx.Regexp `yaml:"fs_types_include"`
	FSTypesExclude     yamlx.Regexp `yaml:"fs_types_exclude"`
}

// DeviceConfig switches a per-device part and filters its devices by name.
type DeviceConfig struct {
	Enabled        bool         `yaml:"enabled"`
	DevicesInclude yamlx.Regexp `yaml:"devices_include"`
	DevicesExclude yamlx.Regexp `yaml:"devices_exclude"`
}

func (d DeviceConfig) selects(name string) bool {
	return (d.DevicesInclude.IsZero() || d.DevicesInclude.Match(name)) && !d.DevicesExclude.Match(name)
}

// DefaultHostConfig returns the host collector's defaults.
func DefaultHostConfig() HostConfig {
	return HostConfig{
		CPU: true, Load: true, Memory: true, BootTime: true,
		Filesystem: FilesystemConfig{
			Enabled:            true,
			MountPointsExclude: yamlx.MustRegexp(`^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`),
			FSTypesExclude:     yamlx.MustRegexp(`^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$`),
		},
		// Partitions are counted in their whole disk; device-mapper and loop
		// devices double-count or are noise, as in node_exporter's default.
		Disk:    DeviceConfig{Enabled: true, DevicesExclude: yamlx.MustRegexp(`^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`)},
		Network: DeviceConfig{Enabled: true, DevicesExclude: yamlx.MustRegexp(`^$`)},
	}
}

// Validate implements yamlx.Validator. Every value is checked while
// decoding; nothing is left to validate here yet.
func (c *HostConfig) Validate(*yamlx.Checker, string) {}

func buildHost(cfg Config, opts Options) ([]Named, error) {
	h := cfg.Host
	if !h.CPU && !h.Load && !h.Memory && !h.BootTime && !h.Filesystem.Enabled && !h.Disk.Enabled && !h.Network.Enabled {
		return nil, nil
	}
	return []Named{{Name: "host", Collector: NewHost(h, opts), Key: configKey([]any{h, opts.Paths}), Reuse: true}}, nil
}

// Host reports CPU, load, memory, filesystems, disks, network interfaces and
// boot time under node_exporter's metric names, so that dashboards and
// community rules written for node_exporter work unchanged.
type Host struct {
	cfg   HostConfig
	paths Paths
	// usage reads one filesystem's sizes; tests replace it, because statfs
	// cannot be pointed at a fixture.
	usage func(ctx context.Context, path string) (*disk.UsageStat, error)

	cpuSeconds, cpuGuest                                 *prometheus.Desc
	load1, load5, load15                                 *prometheus.Desc
	fsSize, fsFree, fsAvail, fsFiles, fsFilesFree, fsRO  *prometheus.Desc
	fsError                                              *prometheus.Desc
	diskReads, diskWrites, diskReadBytes, diskWriteBytes *prometheus.Desc
	diskReadTime, diskWriteTime, diskIOTime, diskIONow   *prometheus.Desc
	netRxBytes, netTxBytes, netRxPackets, netTxPackets   *prometheus.Desc
	netRxErrs, netTxErrs, netRxDrop, netTxDrop           *prometheus.Desc
	bootTime                                             *prometheus.Desc
	memDescs                                             map[string]*prometheus.Desc
}

// NewHost returns the host collector.
func NewHost(cfg HostConfig, opts Options) *Host {
	opts = opts.withDefaults()
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	fs := []string{"device", "fstype", "mountpoint"}
	h := &Host{
		cfg:   cfg,
		paths: opts.Paths,
		usage: disk.UsageWithContext,

		cpuSeconds: d("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", "cpu", "mode"),
		cpuGuest:   d("node_cpu_guest_seconds_total", "Seconds the CPUs spent in guests (VMs) for each mode.", "cpu", "mode"),
		load1:      d("node_load1", "1m load average."),
		load5:      d("node_load5", "5m load average."),
		load15:     d("node_load15", "15m load average."),

		fsSize:      d("node_filesystem_size_bytes", "Filesystem size in bytes.", fs...),
		fsFree:      d("node_filesystem_free_bytes", "Filesystem free space in bytes.", fs...),
		fsAvail:     d("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes.", fs...),
		fsFiles:     d("node_filesystem_files", "Filesystem total file nodes.", fs...),
		fsFilesFree: d("node_filesystem_files_free", "Filesystem total free file nodes.", fs...),
		fsRO:        d("node_filesystem_readonly", "Filesystem read-only status.", fs...),
		fsError:     d("node_filesystem_device_error", "Whether an error occurred while getting statistics for the given device.", fs...),

		diskReads:      d("node_disk_reads_completed_total", "The total number of reads completed successfully.", "device"),
		diskWrites:     d("node_disk_writes_completed_total", "The total number of writes completed successfully.", "device"),
		diskReadBytes:  d("node_disk_read_bytes_total", "The total number of bytes read successfully.", "device"),
		diskWriteBytes: d("node_disk_written_bytes_total", "The total number of bytes written successfully.", "device"),
		diskReadTime:   d("node_disk_read_time_seconds_total", "The total number of seconds spent by all reads.", "device"),
		diskWriteTime:  d("node_disk_write_time_seconds_total", "This is the total number of seconds spent by all writes.", "device"),
		diskIOTime:     d("node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.", "device"),
		diskIONow:      d("node_disk_io_now", "The number of I/Os currently in progress.", "device"),

		netRxBytes:   d("node_network_receive_bytes_total", "Network device statistic receive_bytes.", "device"),
		netTxBytes:   d("node_network_transmit_bytes_total", "Network device statistic transmit_bytes.", "device"),
		netRxPackets: d("node_network_receive_packets_total", "Network device statistic receive_packets.", "device"),
		netTxPackets: d("node_network_transmit_packets_total", "Network device statistic transmit_packets.", "device"),
		netRxErrs:    d("node_network_receive_errs_total", "Network device statistic receive_errs.", "device"),
		netTxErrs:    d("node_network_transmit_errs_total", "Network device statistic transmit_errs.", "device"),
		netRxDrop:    d("node_network_receive_drop_total", "Network device statistic receive_drop.", "device"),
		netTxDrop:    d("node_network_transmit_drop_total", "Network device statistic transmit_drop.", "device"),

		bootTime: d("node_boot_time_seconds", "Node boot time, in unixtime."),
		memDescs: map[string]*prometheus.Desc{},
	}
	for _, f := range memFields {
		h.memDescs[f] = d("node_memory_"+f+"_bytes", "Memory information field "+f+"_bytes.")
	}
	return h
}

// memFields are the /proc/meminfo fields reported, in node_exporter's names.
var memFields = []string{
	"MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached",
	"Active", "Inactive", "Dirty", "Writeback", "Shmem", "Slab", "SReclaimable",
	"SUnreclaim", "Mapped", "PageTables", "CommitLimit", "Committed_AS",
	"SwapTotal", "SwapFree", "VmallocUsed",
}

// Update implements Collector. Each part is read on its own; a part that
// fails does not hide the others, and the errors are joined.
func (h *Host) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	ctx = context.WithValue(ctx, common.EnvKey, common.EnvMap{
		common.HostProcEnvKey: h.paths.Proc,
		common.HostSysEnvKey:  h.paths.Sys,
		common.HostRootEnvKey: h.paths.Rootfs,
	})
	type part struct {
		on   bool
		name string
		fn   func(context.Context, chan<- prometheus.Metric) error
	}
	var errs []error
	for _, p := range []part{
		{h.cfg.CPU, "cpu", h.updateCPU},
		{h.cfg.Load, "load", h.updateLoad},
		{h.cfg.Memory, "memory", h.updateMemory},
		{h.cfg.Filesystem.Enabled, "filesystem", h.updateFilesystems},
		{h.cfg.Disk.Enabled, "disk", h.updateDisks},
		{h.cfg.Network.Enabled, "network", h.updateNetwork},
		{h.cfg.BootTime, "boot_time", h.updateBootTime},
	} {
		if !p.on {
			continue
		}
		if err := p.fn(ctx, ch); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
		}
	}
	return errors.Join(errs...)
}

func (h *Host) updateCPU(ctx context.Context, ch chan<- prometheus.Metric) error {
	times, err := cpu.TimesWithContext(ctx, true)
	if err != nil {
		return fmt.Errorf("reading %s: %w", filepath.Join(h.paths.Proc, "stat"), err)
	}
	if len(times) == 0 {
		return fmt.Errorf("no per-CPU lines in %s; is agent.paths.proc a procfs?", filepath.Join(h.paths.Proc, "stat"))
	}
	for _, t := range times {
		c := strings.TrimPrefix(t.CPU, "cpu")
		for _, m := range []struct {
			mode string
			v    float64
		}{
			{"user", t.User}, {"nice", t.Nice}, {"system", t.System}, {"idle", t.Idle},
			{"iowait", t.Iowait}, {"irq", t.Irq}, {"softirq", t.Softirq}, {"steal", t.Steal},
		} {
			ch <- prometheus.MustNewConstMetric(h.cpuSeconds, prometheus.CounterValue, m.v, c, m.mode)
		}
		ch <- prometheus.MustNewConstMetric(h.cpuGuest, prometheus.CounterValue, t.Guest, c, "user")
		ch <- prometheus.MustNewConstMetric(h.cpuGuest, prometheus.CounterValue, t.GuestNice, c, "nice")
	}
	return nil
}

func (h *Host) updateLoad(ctx context.Context, ch chan<- prometheus.Metric) error {
	avg, err := load.AvgWithContext(ctx)
	if err != nil {
		return fmt.Errorf("reading %s: %w", filepath.Join(h.paths.Proc, "loadavg"), err)
	}
	ch <- prometheus.MustNewConstMetric(h.load1, prometheus.GaugeValue, avg.Load1)
	ch <- prometheus.MustNewConstMetric(h.load5, prometheus.GaugeValue, avg.Load5)
	ch <- prometheus.MustNewConstMetric(h.load15, prometheus.GaugeValue, avg.Load15)
	return nil
}

func (h *Host) updateMemory(ctx context.Context, ch chan<- prometheus.Metric) error {
	v, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return fmt.Errorf("reading %s: %w", filepath.Join(h.paths.Proc, "meminfo"), err)
	}
	vals := map[string]uint64{
		"MemTotal": v.Total, "MemFree": v.Free, "MemAvailable": v.Available,
		"Buffers": v.Buffers,
		// gopsutil adds SReclaimable into Cached to match free(1); undo it
		// so that the value is the kernel's, as node_exporter reports it.
		"Cached":     v.Cached - v.Sreclaimable,
		"SwapCached": v.SwapCached, "Active": v.Active, "Inactive": v.Inactive,
		"Dirty": v.Dirty, "Writeback": v.WriteBack, "Shmem": v.Shared, "Slab": v.Slab,
		"SReclaimable": v.Sreclaimable, "SUnreclaim": v.Sunreclaim, "Mapped": v.Mapped,
		"PageTables": v.PageTables, "CommitLimit": v.CommitLimit, "Committed_AS": v.CommittedAS,
		"SwapTotal": v.SwapTotal, "SwapFree": v.SwapFree, "VmallocUsed": v.VmallocUsed,
	}
	for _, f := range memFields {
		ch <- prometheus.MustNewConstMetric(h.memDescs[f], prometheus.GaugeValue, float64(vals[f]))
	}
	return nil
}

func (h *Host) selectsFilesystem(p disk.PartitionStat) bool {
	f := h.cfg.Filesystem
	if !f.MountPointsInclude.IsZero() && !f.MountPointsInclude.Match(p.Mountpoint) {
		return false
	}
	if !f.FSTypesInclude.IsZero() && !f.FSTypesInclude.Match(p.Fstype) {
		return false
	}
	return !f.MountPointsExclude.Match(p.Mountpoint) && !f.FSTypesExclude.Match(p.Fstype)
}

func (h *Host) updateFilesystems(ctx context.Context, ch chan<- prometheus.Metric) error {
	// all=false drops pseudo filesystems ("nodev" in /proc/filesystems).
	parts, err := disk.PartitionsWithContext(ctx, false)
	if err != nil {
		return fmt.Errorf("listing mounts under %s: %w", h.paths.Proc, err)
	}
	seen := map[string]bool{}
	for _, p := range parts {
		// A filesystem mounted twice at one mount point (bind mounts,
		// over-mounts) is reported once, as node_exporter does.
		if seen[p.Mountpoint] || !h.selectsFilesystem(p) {
			continue
		}
		seen[p.Mountpoint] = true
		labels := []string{p.Device, p.Fstype, p.Mountpoint}
		u, err := h.usage(ctx, filepath.Join(h.paths.Rootfs, p.Mountpoint))
		if err != nil {
			// An unreadable mount (a stale NFS handle, a permission) must
			// not hide the others; it is flagged on its own series.
			ch <- prometheus.MustNewConstMetric(h.fsError, prometheus.GaugeValue, 1, labels...)
			continue
		}
		ro := 0.0
		if slices.Contains(p.Opts, "ro") {
			ro = 1
		}
		ch <- prometheus.MustNewConstMetric(h.fsError, prometheus.GaugeValue, 0, labels...)
		ch <- prometheus.MustNewConstMetric(h.fsSize, prometheus.GaugeValue, float64(u.Total), labels...)
		// gopsutil's Free is the space available to unprivileged users
		// (f_bavail); the space free to root (f_bfree) is Total - Used.
		ch <- prometheus.MustNewConstMetric(h.fsFree, prometheus.GaugeValue, float64(u.Total-u.Used), labels...)
		ch <- prometheus.MustNewConstMetric(h.fsAvail, prometheus.GaugeValue, float64(u.Free), labels...)
		ch <- prometheus.MustNewConstMetric(h.fsFiles, prometheus.GaugeValue, float64(u.InodesTotal), labels...)
		ch <- prometheus.MustNewConstMetric(h.fsFilesFree, prometheus.GaugeValue, float64(u.InodesFree), labels...)
		ch <- prometheus.MustNewConstMetric(h.fsRO, prometheus.GaugeValue, ro, labels...)
	}
	return nil
}

func (h *Host) updateDisks(ctx context.Context, ch chan<- prometheus.Metric) error {
	stats, err := disk.IOCountersWithContext(ctx)
	if err != nil {
		return fmt.Errorf("reading %s: %w", filepath.Join(h.paths.Proc, "diskstats"), err)
	}
	for name, s := range stats {
		if !h.cfg.Disk.selects(name) {
			continue
		}
		c := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, name)
		}
		c(h.diskReads, float64(s.ReadCount))
		c(h.diskWrites, float64(s.WriteCount))
		c(h.diskReadBytes, float64(s.ReadBytes))
		c(h.diskWriteBytes, float64(s.WriteBytes))
		c(h.diskReadTime, float64(s.ReadTime)/1000)
		c(h.diskWriteTime, float64(s.WriteTime)/1000)
		c(h.diskIOTime, float64(s.IoTime)/1000)
		ch <- prometheus.MustNewConstMetric(h.diskIONow, prometheus.GaugeValue, float64(s.IopsInProgress), name)
	}
	return nil
}

func (h *Host) updateNetwork(ctx context.Context, ch chan<- prometheus.Metric) error {
	stats, err := net.IOCountersWithContext(ctx, true)
	if err != nil {
		return fmt.Errorf("reading %s: %w", filepath.Join(h.paths.Proc, "net/dev"), err)
	}
	for _, s := range stats {
		if !h.cfg.Network.selects(s.Name) {
			continue
		}
		c := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), s.Name)
		}
		c(h.netRxBytes, s.BytesRecv)
		c(h.netTxBytes, s.BytesSent)
		c(h.netRxPackets, s.PacketsRecv)
		c(h.netTxPackets, s.PacketsSent)
		c(h.netRxErrs, s.Errin)
		c(h.netTxErrs, s.Errout)
		c(h.netRxDrop, s.Dropin)
		c(h.netTxDrop, s.Dropout)
	}
	return nil
}

func (h *Host) updateBootTime(ctx context.Context, ch chan<- prometheus.Metric) error {
	bt, err := host.BootTimeWithContext(ctx)
	if err != nil {
		return fmt.Errorf("reading btime from %s: %w", filepath.Join(h.paths.Proc, "stat"), err)
	}
	ch <- prometheus.MustNewConstMetric(h.bootTime, prometheus.GaugeValue, float64(bt))
	return nil
}
