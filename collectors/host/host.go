// Package host is the agent's host collector: node_exporter's default Linux
// collectors that dashboards (Grafana's "Node Exporter Full") and the
// node-mixin alerts read, under node_exporter's names, labels, units and
// semantics, so that those dashboards and rules work unchanged on the agent.
//
// Each node_exporter collector is a "family" here, in a file of its own named
// after it (cpu.go, filesystem.go, netstat.go, …), switched on and off under
// `host:` in agent.yaml. The families run concurrently at every gather, and
// each reports node_scrape_collector_duration_seconds and
// node_scrape_collector_success{collector} as node_exporter does.
//
// The files are parsed with prometheus/procfs, node_exporter's own parser,
// wherever it gives node_exporter's exact semantics; docs/metrics.md names
// the source of every family.
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/blockdevice"
	"github.com/prometheus/procfs/sysfs"
	"golang.org/x/sys/unix"

	"github.com/tokpulse/tokpulse-agent/internal/metriccache"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// ErrNoData tells that a family found nothing to report on this host (no
// md arrays, no bonding, conntrack not loaded). As in node_exporter, the
// family's node_scrape_collector_success is 0, but the host collector as a
// whole has not failed.
var ErrNoData = errors.New("collector returned no data")

// Paths locates the host's pseudo filesystems and root, so that tests read
// fixtures and a containerised agent reads the host's.
type Paths struct {
	Proc, Sys, Rootfs string
}

// Options carries what the collector needs besides its configuration.
type Options struct {
	Logger *slog.Logger
	Paths  Paths
	// Now is the clock of node_time_seconds; nil means time.Now.
	Now func() time.Time
}

// Collector reports the enabled families. It is safe for concurrent use: a
// Prometheus scrape and the agent's own gather may run at the same time.
type Collector struct {
	cfg      Config
	paths    Paths
	logger   *slog.Logger
	now      func() time.Time
	families []family

	scrapeDuration, scrapeSuccess *prometheus.Desc

	// statfs reads one filesystem's sizes; tests replace it to make a mount
	// hang or fail, since statfs cannot be pointed at a fixture.
	statfs func(path string, buf *unix.Statfs_t) error
	mounts mountWatch

	// descs caches descriptors whose names come from the data (meminfo,
	// vmstat, netstat fields), so that a gather does not rebuild them.
	descsMu sync.Mutex
	descs   map[string]*prometheus.Desc
	// meminfoDescs finds meminfo's descriptors by the file's key, for
	// values in kB (true) and counts (false).
	meminfoDescs map[bool]map[string]meminfoMetric

	// vmstatFields remembers which field names host.vmstat.fields
	// selects: a hundred names, the same at every gather, matched once.
	vmstatFields sync.Map
	netstat      netstatState

	fs     filesystemDescs
	disk   diskDescs
	netdev netdevDescs
	cpu    cpuDescs
	misc   miscDescs
	osRel  osReleaseCache
	// labels keeps the label pairs of the series between gathers.
	labels metriccache.Cache
	// mountMemo is the last mount table, parsed.
	mountMemo mountMemo
}

// family is one node_exporter collector.
type family struct {
	name   string
	update func(ctx context.Context, ch chan<- prometheus.Metric) error
	// prefixes are the beginnings of the names of every metric the family
	// reports ("" for textfile, whose files may hold any name), so that
	// the agent's own gather for its rules can leave it out
	// (UpdateWanted).
	prefixes []string
}

// New returns the host collector for cfg.
func New(cfg Config, opts Options) *Collector {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Collector{
		cfg:    cfg,
		paths:  opts.Paths,
		logger: opts.Logger,
		now:    opts.Now,
		statfs: unix.Statfs,
		descs:  map[string]*prometheus.Desc{},
		scrapeDuration: prometheus.NewDesc("node_scrape_collector_duration_seconds",
			"node_exporter: Duration of a collector scrape.", []string{"collector"}, nil),
		scrapeSuccess: prometheus.NewDesc("node_scrape_collector_success",
			"node_exporter: Whether a collector succeeded.", []string{"collector"}, nil),
	}
	c.mounts.inflight = map[string]*statfsCall{}
	c.fs = newFilesystemDescs()
	c.disk = newDiskDescs()
	c.netdev = newNetdevDescs()
	c.cpu = newCPUDescs()
	c.misc = newMiscDescs()
	for _, f := range []struct {
		on bool
		family
	}{
		{cfg.ARP.Enabled, family{"arp", c.updateARP, []string{"node_arp_"}}},
		{cfg.Bonding, family{"bonding", c.updateBonding, []string{"node_bonding_"}}},
		{cfg.Conntrack, family{"conntrack", c.updateConntrack, []string{"node_nf_conntrack_"}}},
		{cfg.CPU, family{"cpu", c.updateCPU, []string{"node_cpu_"}}},
		{cfg.Disk.Enabled, family{"diskstats", c.updateDiskstats, []string{"node_disk_"}}},
		{cfg.Entropy, family{"entropy", c.updateEntropy, []string{"node_entropy_"}}},
		{cfg.Filefd, family{"filefd", c.updateFilefd, []string{"node_filefd_"}}},
		{cfg.Filesystem.Enabled, family{"filesystem", c.updateFilesystem, []string{"node_filesystem_"}}},
		{cfg.Load, family{"loadavg", c.updateLoadavg, []string{"node_load"}}},
		{cfg.Mdadm, family{"mdadm", c.updateMdadm, []string{"node_md_"}}},
		{cfg.Memory, family{"meminfo", c.updateMeminfo, []string{"node_memory_"}}},
		{cfg.NetClass.Enabled, family{"netclass", c.updateNetClass, []string{"node_network_"}}},
		{cfg.Network.Enabled, family{"netdev", c.updateNetdev, []string{"node_network_"}}},
		{cfg.Netstat.Enabled, family{"netstat", c.updateNetstat, []string{"node_netstat_"}}},
		{cfg.OS, family{"os", c.updateOS, []string{"node_os_"}}},
		{cfg.Pressure, family{"pressure", c.updatePressure, []string{"node_pressure_"}}},
		{cfg.Sockstat, family{"sockstat", c.updateSockstat, []string{"node_sockstat_"}}},
		{cfg.Softnet, family{"softnet", c.updateSoftnet, []string{"node_softnet_"}}},
		// node_boot_time_seconds comes from /proc/stat, as in node_exporter's
		// stat collector; host.boot_time keeps its own switch.
		{cfg.Stat || cfg.BootTime, family{"stat", c.updateStat, []string{"node_boot_time_seconds", "node_context_switches_total", "node_forks_total", "node_intr_total", "node_procs_"}}},
		{cfg.Textfile.Enabled, family{"textfile", c.updateTextfile, []string{""}}},
		{cfg.Time, family{"time", c.updateTime, []string{"node_time_"}}},
		{cfg.Timex, family{"timex", c.updateTimex, []string{"node_timex_"}}},
		{cfg.UDPQueues, family{"udp_queues", c.updateUDPQueues, []string{"node_udp_queues"}}},
		{cfg.Uname, family{"uname", c.updateUname, []string{"node_uname_"}}},
		{cfg.Vmstat.Enabled, family{"vmstat", c.updateVmstat, []string{"node_vmstat_"}}},
	} {
		if f.on {
			c.families = append(c.families, f.family)
		}
	}
	return c
}

// Families returns the names of the enabled families, node_exporter's
// collector names.
func (c *Collector) Families() []string {
	out := make([]string, len(c.families))
	for i, f := range c.families {
		out[i] = f.name
	}
	return out
}

// Update runs every enabled family concurrently and reports each one's
// duration and success. A family with nothing to report (ErrNoData) is
// logged at debug level; the errors of families that failed are joined.
func (c *Collector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	return c.UpdateWanted(ctx, ch, nil)
}

// UpdateWanted is Update for a reader that needs only the metrics want
// asks for (nil: all): a family none of whose metrics may be read is left
// out, with its node_scrape_collector_* series, unless those are read.
func (c *Collector) UpdateWanted(ctx context.Context, ch chan<- prometheus.Metric, want func(prefix string) bool) error {
	ctx = context.WithValue(ctx, gatherKey{}, &gatherMemo{want: want})
	c.labels.Begin()
	errs := make([]error, len(c.families))
	scrapeMetrics := want == nil || want("node_scrape_collector_")
	update := func(i int, f family) {
		start := time.Now()
		err := f.update(ctx, ch)
		success := 1.0
		switch {
		case err == nil:
		case errors.Is(err, ErrNoData):
			success = 0
			c.logger.Debug("Host collector family returned no data", "family", f.name, "err", err)
		default:
			success = 0
			errs[i] = fmt.Errorf("%s: %w", f.name, err)
		}
		if scrapeMetrics {
			ch <- c.labels.MustNew(c.scrapeDuration, prometheus.GaugeValue, time.Since(start).Seconds(), f.name)
			ch <- c.labels.MustNew(c.scrapeSuccess, prometheus.GaugeValue, success, f.name)
		}
	}
	// With more than one P the families run concurrently, as
	// node_exporter's collectors do, so that the scrape takes the longest
	// family's time. With one (the daemon's default) concurrency gains
	// nothing, and a goroutine per family costs its start and the growth
	// of its stack at every gather: they run one after the other in this
	// goroutine (BenchmarkScrape at GOMAXPROCS=1: 4.5 % fewer instructions;
	// docs/performance.md). Only statfs can block for long, and the
	// filesystem family bounds each mount with its own timeout.
	concurrent := runtime.GOMAXPROCS(0) > 1
	var wg sync.WaitGroup
	for i, f := range c.families {
		if !scrapeMetrics && !slices.ContainsFunc(f.prefixes, want) {
			continue
		}
		if concurrent {
			wg.Go(func() { update(i, f) })
		} else {
			update(i, f)
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// gatherMemo holds what several families of one gather read: /proc/stat
// feeds both cpu and stat, and is parsed once.
type gatherMemo struct {
	// want is the gather's filter (nil: a scrape, which wants all).
	want     func(prefix string) bool
	statOnce sync.Once
	stat     procfs.Stat
	statErr  error
}

type gatherKey struct{}

// wants reports whether the gather in ctx wants the metric name: a
// scrape wants every metric; the rules' gather only what some selector
// may read, so that the families with many fields (meminfo, filesystem)
// leave out the rest instead of handing it to the registry and the rule
// store every interval.
func wants(ctx context.Context, name string) bool {
	m, _ := ctx.Value(gatherKey{}).(*gatherMemo)
	return m == nil || m.want == nil || m.want(name)
}

// procStat returns /proc/stat, parsed once per gather.
func (c *Collector) procStat(ctx context.Context) (procfs.Stat, error) {
	m, _ := ctx.Value(gatherKey{}).(*gatherMemo)
	if m == nil {
		m = &gatherMemo{}
	}
	m.statOnce.Do(func() {
		path := c.procPath("stat")
		data, release, err := readFile(path)
		if err != nil {
			m.statErr = err
			return
		}
		defer release()
		m.stat, m.statErr = parseProcStat(data, path)
	})
	return m.stat, m.statErr
}

func (c *Collector) procPath(name string) string { return filepath.Join(c.paths.Proc, name) }
func (c *Collector) sysPath(name string) string  { return filepath.Join(c.paths.Sys, name) }
func (c *Collector) rootfsPath(name string) string {
	return filepath.Join(c.paths.Rootfs, name)
}

// rootfsStripPrefix turns a mount point seen under agent.paths.rootfs back
// into the host's path, as node_exporter's --path.rootfs does.
func (c *Collector) rootfsStripPrefix(path string) string {
	if c.paths.Rootfs == "/" || c.paths.Rootfs == "" {
		return path
	}
	stripped := strings.TrimPrefix(path, c.paths.Rootfs)
	if stripped == "" {
		return "/"
	}
	return stripped
}

func (c *Collector) procFS() (procfs.FS, error) {
	fs, err := procfs.NewFS(c.paths.Proc)
	if err != nil {
		return fs, fmt.Errorf("opening %s: %w; is agent.paths.proc a procfs?", c.paths.Proc, err)
	}
	return fs, nil
}

func (c *Collector) sysFS() (sysfs.FS, error) {
	fs, err := sysfs.NewFS(c.paths.Sys)
	if err != nil {
		return fs, fmt.Errorf("opening %s: %w; is agent.paths.sys a sysfs?", c.paths.Sys, err)
	}
	return fs, nil
}

func (c *Collector) blockFS() (blockdevice.FS, error) {
	fs, err := blockdevice.NewFS(c.paths.Proc, c.paths.Sys)
	if err != nil {
		return fs, fmt.Errorf("opening %s and %s: %w; are agent.paths.proc and sys a procfs and a sysfs?", c.paths.Proc, c.paths.Sys, err)
	}
	return fs, nil
}

// desc returns the cached descriptor of a metric whose name comes from the
// data, creating it on first use.
func (c *Collector) desc(name, help string, labels ...string) *prometheus.Desc {
	c.descsMu.Lock()
	defer c.descsMu.Unlock()
	d, ok := c.descs[name]
	if !ok {
		d = prometheus.NewDesc(name, help, labels, nil)
		c.descs[name] = d
	}
	return d
}

// fieldSelected reports whether re matches name, remembering the answer in
// cache. A nil re selects nothing.
func (c *Collector) fieldSelected(cache *sync.Map, re *regexp.Regexp, name string) bool {
	if v, ok := cache.Load(name); ok {
		return v.(bool)
	}
	ok := re != nil && re.MatchString(name)
	cache.Store(name, ok)
	return ok
}

// DeviceConfig switches a per-device family and filters its devices by name.
type DeviceConfig struct {
	Enabled        bool         `yaml:"enabled"`
	DevicesInclude yamlx.Regexp `yaml:"devices_include"`
	DevicesExclude yamlx.Regexp `yaml:"devices_exclude"`
}

func (d DeviceConfig) selects(name string) bool {
	return (d.DevicesInclude.IsZero() || d.DevicesInclude.Match(name)) && !d.DevicesExclude.Match(name)
}

// FieldsConfig switches a family whose fields are chosen by a regular
// expression over their names (vmstat, netstat).
type FieldsConfig struct {
	Enabled bool         `yaml:"enabled"`
	Fields  yamlx.Regexp `yaml:"fields"`
}
