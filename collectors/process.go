package collectors

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// ProcessConfig is one entry of the processes: list: a named group of
// processes selected by regular expressions. A process belongs to the
// group when every expression that is set matches. With no match: at all,
// the group is the processes whose name (comm) is the entry's name.
type ProcessConfig struct {
	Name  string       `yaml:"name"`
	Match ProcessMatch `yaml:"match"`
}

// ProcessMatch selects processes by name (/proc/PID/comm, at most 15
// characters), executable path (/proc/PID/exe) or command line (the
// arguments joined by spaces).
type ProcessMatch struct {
	Name    yamlx.Regexp `yaml:"name"`
	Exe     yamlx.Regexp `yaml:"exe"`
	Cmdline yamlx.Regexp `yaml:"cmdline"`
}

func (m ProcessMatch) empty() bool { return m.Name.IsZero() && m.Exe.IsZero() && m.Cmdline.IsZero() }

// UnmarshalYAML fills in the default match, the name itself.
func (p *ProcessConfig) UnmarshalYAML(node *yaml.Node) error {
	type plain ProcessConfig
	if err := node.Decode((*plain)(p)); err != nil {
		return err
	}
	p.defaultMatch()
	return nil
}

// defaultMatch matches the name itself when no expression is set, so that
// an empty match never selects every process.
func (p *ProcessConfig) defaultMatch() {
	if p.Match.empty() {
		p.Match.Name = yamlx.Regexp{Regexp: regexp.MustCompile("^" + regexp.QuoteMeta(p.Name) + "$")}
	}
}

// Validate implements yamlx.Validator.
func (p *ProcessConfig) Validate(c *yamlx.Checker, path string) {
	if p.Name == "" {
		c.Errorf(yamlx.Join(path, "name"), "every process group needs a name; write e.g. name: node")
	}
}

func (c *ProcessConfig) name() string { return c.Name }

// userHZ is the kernel's clock tick for /proc/PID/stat times; 100 on every
// Linux architecture the agent is built for.
const userHZ = 100

// Processes reports the configured process groups. At each gather it lists
// /proc once and reads each process's stat file once; the command line and
// executable are read only when an expression needs them, and the open file
// descriptors only of matched processes. This avoids the cost of calling
// every gopsutil per-process function for every PID (gopsutil issues 842
// and 1283).
type Processes struct {
	groups  []ProcessConfig
	proc    string
	redact  *evidence.Redactor
	needCmd bool
	needExe bool

	mu   sync.Mutex
	last map[string][]processInfo

	up, count, rss, cpu, fds, threads, start *prometheus.Desc
}

type processInfo struct {
	pid     int
	comm    string
	cmdline string
	rss     float64
	cpu     float64
	fds     int
	threads int
	start   float64
}

// NewProcesses returns the collector of groups, reading opts.Paths.Proc.
func NewProcesses(groups []ProcessConfig, opts Options) *Processes {
	opts = opts.withDefaults()
	l := []string{"process"}
	p := &Processes{
		groups:  groups,
		proc:    opts.Paths.Proc,
		redact:  opts.Redactor,
		up:      prometheus.NewDesc("tokpulse_process_up", "1 if at least one process of the group runs.", l, nil),
		count:   prometheus.NewDesc("tokpulse_process_count", "Number of processes in the group.", l, nil),
		rss:     prometheus.NewDesc("tokpulse_process_resident_memory_bytes", "Resident memory of the group's processes, summed.", l, nil),
		cpu:     prometheus.NewDesc("tokpulse_process_cpu_seconds_total", "User and system CPU time of the group's running processes, summed; it drops when a process exits.", l, nil),
		fds:     prometheus.NewDesc("tokpulse_process_open_fds", "Open file descriptors of the group's processes, summed.", l, nil),
		threads: prometheus.NewDesc("tokpulse_process_threads", "Threads of the group's processes, summed.", l, nil),
		start:   prometheus.NewDesc("tokpulse_process_start_time_seconds", "Start time of the group's oldest process, in Unix time.", l, nil),
	}
	p.groups = make([]ProcessConfig, len(groups))
	for i, g := range groups {
		g.defaultMatch()
		p.groups[i] = g
		p.needCmd = p.needCmd || !g.Match.Cmdline.IsZero()
		p.needExe = p.needExe || !g.Match.Exe.IsZero()
	}
	return p
}

func validateProcesses(c *Config, v *yamlx.Checker, path string) {
	validateNamed(c.Processes, v, yamlx.Join(path, "processes"), "process")
}

func buildProcesses(cfg Config, opts Options) ([]Named, error) {
	if len(cfg.Processes) == 0 {
		return nil, nil
	}
	return []Named{{Name: "processes", Collector: NewProcesses(cfg.Processes, opts), Key: configKey([]any{cfg.Processes, opts.Paths}), Reuse: true}}, nil
}

// eachProcess calls fn with every process of the proc root (the host's
// /proc) whose stat file it can read, and the host's boot time in Unix
// seconds: the one reader of the process facts, for the process groups
// (Scan) and for the host's top processes (psRows).
func eachProcess(proc string, fn func(pr procfs.Proc, s procfs.ProcStat, bootTime uint64)) error {
	pfs, err := procfs.NewFS(proc)
	if err != nil {
		return fmt.Errorf("opening %s: %w (set agent.paths.proc to a mounted procfs)", proc, err)
	}
	st, err := pfs.Stat()
	if err != nil {
		return fmt.Errorf("reading boot time from %s/stat: %w", proc, err)
	}
	procs, err := pfs.AllProcs()
	if err != nil {
		return fmt.Errorf("listing %s: %w", proc, err)
	}
	for _, pr := range procs {
		s, err := pr.Stat()
		if err != nil {
			continue // exited meanwhile
		}
		fn(pr, s, st.BootTime)
	}
	return nil
}

// Scan lists the processes of every group now.
func (p *Processes) Scan() (map[string][]processInfo, error) {
	out := make(map[string][]processInfo, len(p.groups))
	err := eachProcess(p.proc, func(pr procfs.Proc, s procfs.ProcStat, bootTime uint64) {
		// Kernel threads and zombies have no program to watch.
		if s.PID == 2 || s.PPID == 2 || s.State == "Z" {
			return
		}
		var cmdline, exe string
		if p.needCmd {
			args, _ := pr.CmdLine()
			cmdline = strings.Join(args, " ")
		}
		if p.needExe {
			exe, _ = pr.Executable()
		}
		var info *processInfo
		for _, g := range p.groups {
			m := g.Match
			if (!m.Name.IsZero() && !m.Name.Match(s.Comm)) ||
				(!m.Exe.IsZero() && !m.Exe.Match(exe)) ||
				(!m.Cmdline.IsZero() && !m.Cmdline.Match(cmdline)) {
				continue
			}
			if info == nil {
				info = &processInfo{
					pid: s.PID, comm: s.Comm, cmdline: cmdline,
					rss:     float64(s.ResidentMemory()),
					cpu:     s.CPUTime(),
					threads: s.NumThreads,
					start:   float64(bootTime) + float64(s.Starttime)/userHZ,
				}
				if info.cmdline == "" {
					args, _ := pr.CmdLine()
					info.cmdline = strings.Join(args, " ")
				}
				n, err := pr.FileDescriptorsLen()
				if err == nil {
					info.fds = n
				}
			}
			out[g.Name] = append(out[g.Name], *info)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Update implements Collector.
func (p *Processes) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	groups, err := p.Scan()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %w", ErrNoData, err)
		}
		return err
	}
	p.mu.Lock()
	p.last = groups
	p.mu.Unlock()
	for _, g := range p.groups {
		ps := groups[g.Name]
		var rss, cpu, fds, threads float64
		start := math.Inf(1)
		for _, i := range ps {
			rss += i.rss
			cpu += i.cpu
			fds += float64(i.fds)
			threads += float64(i.threads)
			start = min(start, i.start)
		}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, g.Name)
		}
		gauge(p.up, b2f(len(ps) > 0))
		gauge(p.count, float64(len(ps)))
		gauge(p.rss, rss)
		gauge(p.fds, fds)
		gauge(p.threads, threads)
		ch <- prometheus.MustNewConstMetric(p.cpu, prometheus.CounterValue, cpu, g.Name)
		if len(ps) > 0 {
			gauge(p.start, start)
		}
	}
	return nil
}

// Evidence implements evidence.Provider: the processes of each group as
// last seen, with their command lines (redacted).
func (p *Processes) Evidence() []evidence.Section {
	p.mu.Lock()
	last := p.last
	p.mu.Unlock()
	var out []evidence.Section
	now := time.Now()
	for _, g := range p.groups {
		ps := last[g.Name]
		sec := evidence.Section{
			Source: "process/" + g.Name, Kind: "processes",
			Title:  fmt.Sprintf("Processes of %s: %d running", g.Name, len(ps)),
			Labels: map[string]string{"process": g.Name},
		}
		for i, pi := range ps {
			if i == 20 {
				sec.Entries = append(sec.Entries, evidence.Entry{Time: now, Text: fmt.Sprintf("… and %d more", len(ps)-i)})
				break
			}
			cmd := pi.cmdline
			if len(cmd) > 300 {
				cmd = cmd[:300] + "…"
			}
			sec.Entries = append(sec.Entries, evidence.Entry{Time: now, Text: p.redact.Redact(fmt.Sprintf(
				"pid=%d rss=%.1fMiB cpu=%.1fs threads=%d fds=%d started=%s cmd=%s",
				pi.pid, pi.rss/(1<<20), pi.cpu, pi.threads, pi.fds,
				time.Unix(int64(pi.start), 0).UTC().Format(time.RFC3339), cmd))})
		}
		out = append(out, sec)
	}
	return out
}
