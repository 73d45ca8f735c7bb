package host

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// SelfProcess exports the agent's own process_* metrics, the series and
// help texts of client_golang's process collector, at a fraction of its
// cost: that collector parses the whole of /proc/stat (with fmt.Sscanf)
// for the boot time, /proc/self/limits with regular expressions and the
// whole of /proc/self/net/netstat at every scrape, a sixteenth of the idle
// daemon's CPU in a profile (docs/performance.md). Here the boot time is
// read once, the limits come from getrlimit(2), and of netstat only the
// IpExt pair is kept. It lives in this package to use its readers of
// /proc (readFile, parseProcStat, parseNetstat) and procfs' fd count.
// TestSelfProcessMatchesClientGolang holds the two to the same series. As
// client_golang's (without ReportErrors), a metric whose source cannot be
// read is left out of that gather.
type SelfProcess struct {
	proc string // the process' /proc/PID directory

	descs selfProcessDescs

	pid  int
	fs   procfs.FS
	fsOK bool

	bootOnce sync.Once
	boot     float64 // seconds since the epoch; 0: unknown
}

type selfProcessDescs struct {
	cpu, openFDs, maxFDs, vsize, maxVsize, rss, start, rx, tx *prometheus.Desc
}

// NewSelfProcess returns the collector of the calling process.
func NewSelfProcess() *SelfProcess { return newSelfProcess("/proc", os.Getpid()) }

func newSelfProcess(proc string, pid int) *SelfProcess {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	fs, err := procfs.NewFS(proc)
	return &SelfProcess{
		proc: filepath.Join(proc, strconv.Itoa(pid)), pid: pid, fs: fs, fsOK: err == nil,
		descs: selfProcessDescs{
			cpu:      d("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."),
			openFDs:  d("process_open_fds", "Number of open file descriptors."),
			maxFDs:   d("process_max_fds", "Maximum number of open file descriptors."),
			vsize:    d("process_virtual_memory_bytes", "Virtual memory size in bytes."),
			maxVsize: d("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes."),
			rss:      d("process_resident_memory_bytes", "Resident memory size in bytes."),
			start:    d("process_start_time_seconds", "Start time of the process since unix epoch in seconds."),
			rx:       d("process_network_receive_bytes_total", "Number of bytes received by the process over the network."),
			tx:       d("process_network_transmit_bytes_total", "Number of bytes sent by the process over the network."),
		},
	}
}

// Describe implements prometheus.Collector.
func (p *SelfProcess) Describe(ch chan<- *prometheus.Desc) {
	d := p.descs
	for _, x := range []*prometheus.Desc{d.cpu, d.openFDs, d.maxFDs, d.vsize, d.maxVsize, d.rss, d.start, d.rx, d.tx} {
		ch <- x
	}
}

// Collect implements prometheus.Collector.
func (p *SelfProcess) Collect(ch chan<- prometheus.Metric) {
	d := p.descs
	if st, err := p.stat(); err == nil {
		ch <- prometheus.MustNewConstMetric(d.cpu, prometheus.CounterValue, st.cpu)
		ch <- prometheus.MustNewConstMetric(d.vsize, prometheus.GaugeValue, st.vsize)
		ch <- prometheus.MustNewConstMetric(d.rss, prometheus.GaugeValue, st.rss)
		if boot := p.bootTime(); boot > 0 {
			ch <- prometheus.MustNewConstMetric(d.start, prometheus.GaugeValue, boot+st.startTicks/userHZ)
		}
	}
	if n, err := p.openFDs(); err == nil {
		ch <- prometheus.MustNewConstMetric(d.openFDs, prometheus.GaugeValue, float64(n))
	}
	// The limits of /proc/self/limits' "Soft Limit" column are the
	// current ones getrlimit returns (RLIM_INFINITY for "unlimited", as
	// procfs reads it).
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
		ch <- prometheus.MustNewConstMetric(d.maxFDs, prometheus.GaugeValue, float64(rl.Cur))
	}
	if unix.Getrlimit(unix.RLIMIT_AS, &rl) == nil {
		ch <- prometheus.MustNewConstMetric(d.maxVsize, prometheus.GaugeValue, float64(rl.Cur))
	}
	if in, out, err := ipExtOctets(filepath.Join(p.proc, "net", "netstat")); err == nil {
		ch <- prometheus.MustNewConstMetric(d.rx, prometheus.CounterValue, in)
		ch <- prometheus.MustNewConstMetric(d.tx, prometheus.CounterValue, out)
	}
}

type selfStat struct {
	cpu, vsize, rss, startTicks float64
}

// stat reads /proc/PID/stat: utime and stime (fields 14, 15), starttime
// (22), vsize (23) and rss in pages (24), counted from the field after the
// command name, which may itself hold spaces and parentheses.
func (p *SelfProcess) stat() (selfStat, error) {
	path := filepath.Join(p.proc, "stat")
	data, release, err := readFile(path)
	defer release()
	if err != nil {
		return selfStat{}, err
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return selfStat{}, fmt.Errorf("%s: no command name", path)
	}
	var f [22]float64 // fields 3 (state) to 24; only those used are parsed
	n := 0
	for field := range bytes.FieldsSeq(data[i+1:]) {
		if n == len(f) {
			break
		}
		if k := n + 3; k == 14 || k == 15 || k >= 22 {
			v, err := strconv.ParseUint(string(field), 10, 64)
			if err != nil {
				return selfStat{}, fmt.Errorf("%s: field %d: %w", path, n+3, err)
			}
			f[n] = float64(v)
		}
		n++
	}
	if n < len(f) {
		return selfStat{}, fmt.Errorf("%s: %d fields after the command name, want %d", path, n, len(f))
	}
	field := func(k int) float64 { return f[k-3] }
	return selfStat{
		cpu:        (field(14) + field(15)) / userHZ,
		startTicks: field(22),
		vsize:      field(23),
		rss:        field(24) * float64(os.Getpagesize()),
	}, nil
}

// bootTime is /proc/stat's btime, read once: the kernel sets it at boot.
func (p *SelfProcess) bootTime() float64 {
	p.bootOnce.Do(func() {
		path := filepath.Join(filepath.Dir(p.proc), "stat")
		data, release, err := readFile(path)
		defer release()
		if err != nil {
			return
		}
		if st, err := parseProcStat(data, path); err == nil {
			p.boot = float64(st.BootTime)
		}
	})
	return p.boot
}

// openFDs is procfs' count of the process' open file descriptors (the fd
// directory's size since Linux 6.2, its entries before).
func (p *SelfProcess) openFDs() (int, error) {
	if !p.fsOK {
		return 0, errors.New("no procfs")
	}
	proc, err := p.fs.Proc(p.pid)
	if err != nil {
		return 0, err
	}
	return proc.FileDescriptorsLen()
}

// ipExtOctets reads InOctets and OutOctets of the IpExt lines of a
// /proc/net/netstat file.
func ipExtOctets(path string) (in, out float64, err error) {
	data, release, err := readFile(path)
	defer release()
	if err != nil {
		return 0, 0, err
	}
	found := 0
	err = parseNetstat(data, func(proto, name, value []byte) error {
		var dst *float64
		switch {
		case string(proto) != "IpExt":
			return nil
		case string(name) == "InOctets":
			dst = &in
		case string(name) == "OutOctets":
			dst = &out
		default:
			return nil
		}
		v, err := strconv.ParseUint(string(value), 10, 64)
		if err != nil {
			return fmt.Errorf("IpExt %s: %w", name, err)
		}
		*dst = float64(v)
		found++
		return nil
	})
	if err == nil && found != 2 {
		err = errors.New("no IpExt InOctets and OutOctets")
	}
	if err != nil {
		return 0, 0, fmt.Errorf("parsing %s: %w", path, err)
	}
	return in, out, nil
}
