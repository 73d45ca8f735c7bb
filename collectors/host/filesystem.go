package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// filesystemDescs are node_exporter's filesystem collector metrics. Since
// node_exporter 1.9 they have a device_error label with the error of a
// failed statfs, empty otherwise. An empty label is no label to Prometheus,
// so the series of a mount whose statfs succeeded are written without it
// (as node_exporter 1.5 writes them), and the rules' store and the alerts
// see the same label set as a Prometheus server.
type filesystemDescs struct {
	size, free, avail, files, filesFree, readonly, deviceError *prometheus.Desc
	// readonlyErr and deviceErrorErr carry device_error.
	readonlyErr, deviceErrorErr *prometheus.Desc
	mountInfo                   *prometheus.Desc
}

func newFilesystemDescs() filesystemDescs {
	l := []string{"device", "mountpoint", "fstype"}
	le := []string{"device", "mountpoint", "fstype", "device_error"}
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, l, nil) }
	const roHelp = "Filesystem read-only status."
	const errHelp = "Whether an error occurred while getting statistics for the given device."
	return filesystemDescs{
		size:           d("node_filesystem_size_bytes", "Filesystem size in bytes."),
		free:           d("node_filesystem_free_bytes", "Filesystem free space in bytes."),
		avail:          d("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes."),
		files:          d("node_filesystem_files", "Filesystem total file nodes."),
		filesFree:      d("node_filesystem_files_free", "Filesystem total free file nodes."),
		readonly:       d("node_filesystem_readonly", roHelp),
		deviceError:    d("node_filesystem_device_error", errHelp),
		readonlyErr:    prometheus.NewDesc("node_filesystem_readonly", roHelp, le, nil),
		deviceErrorErr: prometheus.NewDesc("node_filesystem_device_error", errHelp, le, nil),
		mountInfo: prometheus.NewDesc("node_filesystem_mount_info", "Filesystem mount information.",
			[]string{"device", "major", "minor", "mountpoint"}, nil),
	}
}

// mount is one line of mountinfo, with node_exporter's label values: the
// device is the mount source exactly as the kernel shows it (/dev/root,
// /dev/mapper/vg-root, server:/export, tmpfs), never resolved.
type mount struct {
	device, mountPoint, fsType string
	major, minor               string
	readOnly                   bool
}

// mountWatch keeps at most one statfs per mount point in flight. A statfs
// that outlives the mount timeout (a hard NFS mount whose server is gone)
// marks its mount point stuck: gathers report it at once with device_error
// 1 and do not call statfs on it again until the pending call returns, so a
// dead server neither stalls scrapes nor piles up blocked threads.
type mountWatch struct {
	mu       sync.Mutex
	inflight map[string]*statfsCall
}

type statfsCall struct {
	started time.Time
	done    chan struct{}
	buf     unix.Statfs_t
	err     error
}

// errMountTimeout is node_exporter's device_error text for a stuck mount.
var errMountTimeout = errors.New("mountpoint timeout")

// mountStat is one selected mount and its statfs (or why there is none).
type mountStat struct {
	m   mount
	buf unix.Statfs_t
	err error
}

// statMounts reads the mount table and the statfs of every selected
// mount: the one reader of the filesystem facts, for the metrics and for
// an alert's evidence (Filesystems).
func (c *Collector) statMounts(ctx context.Context) ([]mountStat, error) {
	mounts, err := c.readMounts()
	if err != nil {
		return nil, err
	}
	var selected []mount
	for _, m := range mounts {
		if c.filesystemSelected(m) {
			selected = append(selected, m)
		}
	}
	results := make([]mountStat, len(selected))
	var wg sync.WaitGroup
	// One statfs per mount point, concurrently: a slow mount costs its own
	// timeout, not the sum over mounts.
	for i, m := range selected {
		wg.Go(func() {
			buf, err := c.statfsWithTimeout(ctx, m.mountPoint)
			results[i] = mountStat{m, buf, err}
		})
	}
	wg.Wait()
	return results, nil
}

// Filesystem is one mounted filesystem's usage, as df shows it.
type Filesystem struct {
	Device, MountPoint, FSType string
	// Size, Used and Avail are in bytes: used is what is not free, avail
	// what an unprivileged user may still write.
	Size, Used, Avail uint64
}

// Filesystems returns the usage of the filesystems the collector's
// filesystem family reports (the same mounts, selection and statfs
// timeouts), leaving out those whose statfs failed or timed out.
func (c *Collector) Filesystems(ctx context.Context) ([]Filesystem, error) {
	results, err := c.statMounts(ctx)
	if err != nil {
		return nil, err
	}
	var out []Filesystem
	for _, r := range results {
		if r.err != nil {
			continue
		}
		bsize := uint64(r.buf.Bsize)
		out = append(out, Filesystem{
			Device: r.m.device, MountPoint: r.m.mountPoint, FSType: r.m.fsType,
			Size: r.buf.Blocks * bsize, Used: (r.buf.Blocks - r.buf.Bfree) * bsize, Avail: r.buf.Bavail * bsize,
		})
	}
	return out, nil
}

func (c *Collector) updateFilesystem(ctx context.Context, ch chan<- prometheus.Metric) error {
	results, err := c.statMounts(ctx)
	if err != nil {
		return err
	}
	type key struct{ device, mountPoint, fsType, deviceError, major, minor string }
	seen := map[key]bool{}
	want := struct{ deviceError, readonly, size, free, avail, files, filesFree, mountInfo bool }{
		wants(ctx, "node_filesystem_device_error"), wants(ctx, "node_filesystem_readonly"),
		wants(ctx, "node_filesystem_size_bytes"), wants(ctx, "node_filesystem_free_bytes"),
		wants(ctx, "node_filesystem_avail_bytes"), wants(ctx, "node_filesystem_files"),
		wants(ctx, "node_filesystem_files_free"), wants(ctx, "node_filesystem_mount_info"),
	}
	for _, r := range results {
		m := r.m
		errText := ""
		if r.err != nil {
			errText = r.err.Error()
		}
		// A mount seen twice with the same labels (mounted twice on one
		// mount point) is reported once, as node_exporter does.
		k := key{m.device, m.mountPoint, m.fsType, errText, m.major, m.minor}
		if seen[k] {
			continue
		}
		seen[k] = true
		labels := []string{m.device, m.mountPoint, m.fsType}
		ro := 0.0
		if m.readOnly {
			ro = 1
		}
		if r.err != nil {
			c.logger.Debug("statfs failed", "mountpoint", m.mountPoint, "err", r.err)
			ch <- c.labels.MustNew(c.fs.deviceErrorErr, prometheus.GaugeValue, 1, append(labels, errText)...)
			ch <- c.labels.MustNew(c.fs.readonlyErr, prometheus.GaugeValue, ro, append(labels, errText)...)
			continue
		}
		b := r.buf
		bsize := float64(b.Bsize)
		for _, v := range []struct {
			want bool
			d    *prometheus.Desc
			v    float64
		}{
			{want.deviceError, c.fs.deviceError, 0},
			{want.readonly, c.fs.readonly, ro},
			{want.size, c.fs.size, float64(b.Blocks) * bsize},
			{want.free, c.fs.free, float64(b.Bfree) * bsize},
			{want.avail, c.fs.avail, float64(b.Bavail) * bsize},
			{want.files, c.fs.files, float64(b.Files)},
			{want.filesFree, c.fs.filesFree, float64(b.Ffree)},
		} {
			if v.want {
				ch <- c.labels.MustNew(v.d, prometheus.GaugeValue, v.v, labels...)
			}
		}
		if want.mountInfo {
			ch <- c.labels.MustNew(c.fs.mountInfo, prometheus.GaugeValue, 1, m.device, m.major, m.minor, m.mountPoint)
		}
	}
	return nil
}

func (c *Collector) filesystemSelected(m mount) bool {
	f := c.cfg.Filesystem
	if !f.MountPointsInclude.IsZero() && !f.MountPointsInclude.Match(m.mountPoint) {
		return false
	}
	if !f.FSTypesInclude.IsZero() && !f.FSTypesInclude.Match(m.fsType) {
		return false
	}
	return !f.MountPointsExclude.Match(m.mountPoint) && !f.FSTypesExclude.Match(m.fsType)
}

// readMounts reads PID 1's mount table (the host's, even when the agent
// runs in a mount namespace of its own), falling back to the agent's own
// when PID 1 is hidden (hidepid), as node_exporter does.
//
// The table is parsed again only when its text changed since the last
// gather (mountMemo): on a host whose mounts do not move, every scrape
// and every agent.interval read the same few KB, and parsing them (procfs'
// option maps, major:minor) was most of the family's allocations.
//
// On a real procfs the kernel also says when the table changed (a mount
// table file polls POLLPRI after a mount or unmount, proc(5)): while it
// has not, the last table is used without reading the file, whose
// generation (show_mountinfo) was a twentieth of the idle daemon's CPU
// with twenty mounts, and grows with the containers of a host.
func (c *Collector) readMounts() ([]mount, error) {
	m := &c.mountMemo
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mounts != nil && m.watch != nil && !m.watch.changed() {
		return m.mounts, nil
	}
	if !m.watchTried {
		// Opened before the table is read: a change from here on is seen
		// at the next gather. Tried once: a table that cannot be watched
		// (a fixture, not procfs) is read at every gather without
		// opening it twice more each time.
		m.watchTried = true
		if m.watch = openMountsWatch(c.procPath("1/mountinfo")); m.watch == nil {
			m.watch = openMountsWatch(c.procPath("self/mountinfo"))
		}
	}
	pid := 1
	data, release, err := readFile(c.procPath("1/mountinfo"))
	if errors.Is(err, os.ErrNotExist) {
		pid = 0
		data, release, err = readFile(c.procPath("self/mountinfo"))
	}
	defer release()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", c.procPath("1/mountinfo"), err)
	}
	if m.mounts != nil && m.pid == pid && bytes.Equal(m.raw, data) {
		return m.mounts, nil
	}
	fs, err := c.procFS()
	if err != nil {
		return nil, err
	}
	var infos []*procfs.MountInfo
	if pid == 1 {
		infos, err = fs.GetProcMounts(1)
	} else {
		infos, err = fs.GetMounts()
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", c.procPath("1/mountinfo"), err)
	}
	mounts, err := c.parseMounts(infos)
	if err != nil {
		return nil, err
	}
	// procfs read the file again: should it have changed in between, the
	// next gather sees text different from raw and parses once more.
	m.raw, m.pid, m.mounts = append(m.raw[:0], data...), pid, mounts
	return mounts, nil
}

// mountMemo is the last mount table read, as text and parsed; the parsed
// slice is shared, read-only, by the gathers that read the same text.
type mountMemo struct {
	mu     sync.Mutex
	pid    int // 1, or 0 for the agent's own table
	raw    []byte
	mounts []mount
	// watch tells whether the table changed since it was read; nil when
	// the file is not on procfs (a fixture) and must be read each time.
	watch      *mountsWatch
	watchTried bool
}

// mountsWatch is an open mount table of procfs, which polls POLLPRI once
// after each change of the mount namespace's table.
type mountsWatch struct{ f *os.File }

// openMountsWatch opens path for watching, or returns nil when it is not
// a procfs file (whose poll would never report a change).
func openMountsWatch(path string) *mountsWatch {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	var st unix.Statfs_t
	if unix.Fstatfs(int(f.Fd()), &st) != nil || st.Type != unix.PROC_SUPER_MAGIC {
		_ = f.Close()
		return nil
	}
	// The file is closed when the collector is dropped (os.File's
	// cleanup), after a reload replaced it.
	return &mountsWatch{f}
}

// changed reports whether the table changed since the last call (or the
// open); it errs towards true.
func (w *mountsWatch) changed() bool {
	fds := []unix.PollFd{{Fd: int32(w.f.Fd()), Events: unix.POLLPRI}}
	n, err := unix.Poll(fds, 0)
	return err != nil || (n > 0 && fds[0].Revents&(unix.POLLPRI|unix.POLLERR) != 0)
}

func (c *Collector) parseMounts(infos []*procfs.MountInfo) ([]mount, error) {
	out := make([]mount, 0, len(infos))
	for _, mi := range infos {
		var major, minor int
		if _, err := fmt.Sscanf(mi.MajorMinorVer, "%d:%d", &major, &minor); err != nil {
			return nil, fmt.Errorf("malformed major:minor %q in %s", mi.MajorMinorVer, c.procPath("1/mountinfo"))
		}
		// fstab(5) escapes of space and tab.
		mp := strings.ReplaceAll(mi.MountPoint, `\040`, " ")
		mp = strings.ReplaceAll(mp, `\011`, "\t")
		_, mountRO := mi.Options["ro"]
		_, superRO := mi.SuperOptions["ro"]
		_, emergencyRO := mi.SuperOptions["emergency_ro"]
		out = append(out, mount{
			device:     strings.ToValidUTF8(mi.Source, "\uFFFD"),
			mountPoint: strings.ToValidUTF8(c.rootfsStripPrefix(mp), "\uFFFD"),
			fsType:     strings.ToValidUTF8(mi.FSType, "\uFFFD"),
			major:      strconv.Itoa(major),
			minor:      strconv.Itoa(minor),
			readOnly:   mountRO || superRO || emergencyRO,
		})
	}
	return out, nil
}

// statfsWithTimeout returns the statfs of mountPoint (under the rootfs), or
// errMountTimeout when it does not answer within the mount timeout or ctx's
// deadline. The call itself goes on in the background; see mountWatch.
func (c *Collector) statfsWithTimeout(ctx context.Context, mountPoint string) (unix.Statfs_t, error) {
	timeout := c.cfg.Filesystem.MountTimeout.D()
	c.mounts.mu.Lock()
	call, ok := c.mounts.inflight[mountPoint]
	if !ok {
		call = &statfsCall{started: time.Now(), done: make(chan struct{})}
		c.mounts.inflight[mountPoint] = call
		go func() {
			call.err = c.statfs(c.rootfsPath(mountPoint), &call.buf)
			c.mounts.mu.Lock()
			delete(c.mounts.inflight, mountPoint)
			c.mounts.mu.Unlock()
			if time.Since(call.started) > timeout {
				c.logger.Info("Filesystem answers again after a stuck statfs", "mountpoint", mountPoint, "took", time.Since(call.started).Round(time.Millisecond))
			}
			close(call.done)
		}()
	}
	c.mounts.mu.Unlock()
	remaining := timeout - time.Since(call.started)
	if remaining <= 0 {
		// Stuck since an earlier gather: report at once.
		select {
		case <-call.done:
			return call.buf, call.err
		default:
			return unix.Statfs_t{}, errMountTimeout
		}
	}
	t := time.NewTimer(remaining)
	defer t.Stop()
	select {
	case <-call.done:
		return call.buf, call.err
	case <-t.C:
		c.logger.Warn("statfs timed out; reporting the mount with node_filesystem_device_error 1 until it answers", "mountpoint", mountPoint, "timeout", timeout)
		return unix.Statfs_t{}, errMountTimeout
	case <-ctx.Done():
		return unix.Statfs_t{}, errMountTimeout
	}
}
