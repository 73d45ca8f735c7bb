package collectors

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs"
	"github.com/tokpulse/tokpulse-agent/collectors/host"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
)

// Evidence limits: an alert must stay small enough for a webhook body and
// a chat message, however many log lines the collectors keep.
const (
	maxEvidenceSections = 12
	maxSectionEntries   = 20
	maxEntryBytes       = 512
	maxEvidenceBytes    = 32 << 10
	topProcesses        = 5
)

// HostEvidence snapshots what the runbook's "Investigation and Diagnosis"
// has the on-call engineer gather by hand (free -h, df -h, load, top
// processes), plus the sections of the collectors' evidence providers,
// chosen and ordered for each alert (see Snapshot). Each host fact is read
// by the reader of the collector that reports it: the memory by the host
// collector's meminfo parser, the load by its loadavg reader, the
// filesystems by its filesystem family (same mounts, same statfs
// timeouts), the processes by the process collector's procfs walk.
type HostEvidence struct {
	// Proc and Rootfs are the host's /proc and / (agent.paths).
	Proc, Rootfs string
	// Providers returns the collectors that keep evidence; may be nil.
	Providers func() []evidence.Provider
	Redactor  *evidence.Redactor
	Now       func() time.Time
	// Host is the host collector's configuration: the df rows are the
	// filesystems its filesystem family reports (host.filesystem's
	// selection). Nil means its defaults.
	Host *HostConfig

	// fs reads the filesystems; made at the first snapshot and kept, so
	// that a mount whose statfs hangs is waited for once, not at every
	// snapshot.
	fsOnce sync.Once
	fs     *host.Collector
}

// Host sections, by what they are about; hostTopics says which metric
// names make each one explain an alert.
const (
	topicMemory = "memory"
	topicDisk   = "disk"
	topicCPU    = "cpu"
)

// hostTopics maps metric name prefixes to the host facts that explain an
// alert over them: a memory rule wants free -h and the largest processes,
// a CPU rule the busiest processes and the load, a disk rule df -h.
var hostTopics = []struct{ prefix, topic string }{
	{"node_memory_", topicMemory}, {"node_vmstat_", topicMemory}, {"node_pressure_memory", topicMemory},
	{"process_resident_memory", topicMemory},
	{"node_filesystem_", topicDisk}, {"node_disk_", topicDisk},
	{"node_cpu_", topicCPU}, {"node_load", topicCPU}, {"node_pressure_cpu", topicCPU},
	{"node_procs_", topicCPU}, {"process_cpu_", topicCPU},
}

// hostSection is a host section with the topics it explains. A failed
// one only says why the host could not be read: shown where it would
// have explained the alert, left out of the context.
type hostSection struct {
	evidence.Section
	topics []string
	failed bool
}

// Snapshot implements incident.EvidenceSource: for each alert, the sections
// that explain it first and marked Relevant (at most three), then the rest
// of what concerns it, then the host's state; never another alert's
// evidence.
//
//  1. The collectors' sections whose labels are all among the alert's: the
//     failing probe's status and body excerpt for {probe="health"}, the
//     check's output, the log lines of {source, pattern}, the unit's state.
//  2. The host facts the rule's metrics are about: free -h and the top
//     processes by memory for a memory rule, the top processes by CPU and
//     the load for a CPU rule, df -h (the alert's mount point first) for a
//     disk rule.
//  3. Collectors' sections that share a label with the alert and contradict
//     none (the other patterns of the log source of an error-rate alert),
//     newest first.
//  4. The other host sections, as context. Sections of other probes,
//     checks, logs and units are left out: they belong to their own alerts.
//
// Empty sections (no filesystem to show) are left out. The host part is
// read once and shared by every alert of the evaluation.
func (h *HostEvidence) Snapshot(ctx context.Context, alerts []evidence.Subject) [][]evidence.Section {
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	red := h.Redactor
	if red == nil {
		red = evidence.NewRedactor()
	}
	hostSecs := h.hostSections(ctx, now())
	var provided []evidence.Section
	if h.Providers != nil {
		for _, p := range h.Providers() {
			provided = append(provided, p.Evidence()...)
		}
	}
	out := make([][]evidence.Section, len(alerts))
	for i, subj := range alerts {
		out[i] = bound(selectEvidence(subj, hostSecs, provided), red)
	}
	return out
}

// selectEvidence orders the sections for one alert as Snapshot describes.
func selectEvidence(subj evidence.Subject, host []hostSection, provided []evidence.Section) []evidence.Section {
	topics := map[string]bool{}
	for _, m := range subj.Metrics {
		for _, t := range hostTopics {
			if strings.HasPrefix(m, t.prefix) {
				topics[t.topic] = true
			}
		}
	}
	var own, related []evidence.Section
	for _, s := range provided {
		switch labelMatch(s.Labels, subj.Labels) {
		case matchAll:
			own = append(own, s)
		case matchSome:
			related = append(related, s)
		}
	}
	sort.SliceStable(related, func(i, j int) bool { return newest(related[i]).After(newest(related[j])) })
	var facts, background []evidence.Section
	for _, hs := range host {
		s := hs.Section
		if mp := subj.Labels["mountpoint"]; mp != "" && slices.Contains(hs.topics, topicDisk) {
			s = mountFirst(s, mp)
		}
		switch {
		case slices.ContainsFunc(hs.topics, func(t string) bool { return topics[t] }):
			facts = append(facts, s)
		case !hs.failed:
			background = append(background, s)
		}
	}
	explaining := append(own, facts...)
	var out []evidence.Section
	for i, s := range append(explaining, related...) {
		s.Relevant = i < maxRelevantSections && i < len(explaining)
		out = append(out, s)
	}
	return append(out, background...)
}

// maxRelevantSections is how many sections explain an alert at most: the
// two or three a person reads first.
const maxRelevantSections = 3

type match int

const (
	matchNone match = iota
	matchSome
	matchAll
)

// labelMatch compares a section's labels with an alert's: all of them
// among the alert's (its own evidence), some shared and none contradicted
// (related), or not at all.
func labelMatch(want, have map[string]string) match {
	if len(want) == 0 {
		return matchNone
	}
	shared := 0
	for k, v := range want {
		hv, ok := have[k]
		switch {
		case !ok:
		case hv != v:
			return matchNone
		default:
			shared++
		}
	}
	switch shared {
	case len(want):
		return matchAll
	case 0:
		return matchNone
	}
	return matchSome
}

// newest is the time of a section's latest entry.
func newest(s evidence.Section) time.Time {
	var t time.Time
	for _, e := range s.Entries {
		if e.Time.After(t) {
			t = e.Time
		}
	}
	return t
}

// mountFirst moves the df -h row of mount point mp right under the
// header, so that a disk alert shows its own filesystem first.
func mountFirst(s evidence.Section, mp string) evidence.Section {
	if len(s.Entries) < 2 {
		return s
	}
	rows := slices.Clone(s.Entries)
	for i := 1; i < len(rows); i++ {
		if f := strings.Fields(rows[i].Text); len(f) > 0 && f[len(f)-1] == mp {
			row := rows[i]
			copy(rows[2:i+1], rows[1:i])
			rows[1] = row
			break
		}
	}
	s.Entries = rows
	return s
}

// bound redacts and trims sections to the evidence limits, keeping the
// most recent entries of each and dropping whole sections at the end.
func bound(secs []evidence.Section, red *evidence.Redactor) []evidence.Section {
	var out []evidence.Section
	size := 0
	for _, s := range secs {
		if len(out) >= maxEvidenceSections {
			break
		}
		if len(s.Entries) > maxSectionEntries {
			s.Entries = s.Entries[len(s.Entries)-maxSectionEntries:]
		}
		entries := make([]evidence.Entry, 0, len(s.Entries))
		secSize := len(s.Title) + len(s.Source)
		for _, e := range s.Entries {
			t := red.Redact(e.Text)
			if len(t) > maxEntryBytes {
				t = truncateUTF8(t, maxEntryBytes) + "…"
			}
			entries = append(entries, evidence.Entry{Time: e.Time, Text: t})
			secSize += len(t)
		}
		if size+secSize > maxEvidenceBytes {
			break
		}
		size += secSize
		s.Title = red.Redact(s.Title)
		s.Entries = entries
		out = append(out, s)
	}
	return out
}

func truncateUTF8(s string, n int) string {
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

func (h *HostEvidence) hostSections(ctx context.Context, now time.Time) []hostSection {
	var out []hostSection
	add := func(title string, lines []string, err error, topics ...string) {
		if err != nil {
			lines = []string{"could not read: " + err.Error()}
		}
		if len(lines) == 0 {
			return // nothing to show: no empty section
		}
		s := evidence.Section{Source: "host", Kind: "host", Title: title}
		for _, l := range lines {
			s.Entries = append(s.Entries, evidence.Entry{Time: now, Text: l})
		}
		out = append(out, hostSection{s, topics, err != nil})
	}
	mem, err := h.memory()
	add("Memory and swap (free -h)", mem, err, topicMemory)
	fs, err := h.filesystems(ctx)
	add("Filesystems (df -h)", fs, err, topicDisk)
	var avg []string
	a, err := host.LoadAvg(h.Proc)
	if err == nil {
		avg = []string{fmt.Sprintf("load average: %.2f, %.2f, %.2f", a.Load1, a.Load5, a.Load15)}
	}
	add("Load average", avg, err, topicCPU)
	byMem, byCPU, err := h.processes(now)
	add("Top processes by memory (ps aux --sort=-rss)", byMem, err, topicMemory)
	add("Top processes by CPU (ps aux --sort=-%cpu)", byCPU, err, topicCPU)
	return out
}

// human formats bytes as free -h and df -h do (powers of 1024).
func human(b uint64) string {
	const units = "BKMGTPE"
	f := float64(b)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", b)
	}
	if f < 10 {
		return fmt.Sprintf("%.1f%ci", f, units[i])
	}
	return fmt.Sprintf("%.0f%ci", f, units[i])
}

// memory is free -h from the host collector's meminfo reader. As free
// (procps) and gopsutil count them, buff/cache includes the reclaimable
// slab, and without MemAvailable (kernels before 3.14) free plus cache
// is what is available.
func (h *HostEvidence) memory() ([]string, error) {
	mi, err := host.Meminfo(h.Proc)
	if err != nil {
		return nil, err
	}
	field := func(name string) uint64 { return uint64(mi[name]) }
	total, free, buffers := field("MemTotal_bytes"), field("MemFree_bytes"), field("Buffers_bytes")
	cached := field("Cached_bytes") + field("SReclaimable_bytes")
	available, ok := mi["MemAvailable_bytes"]
	avail := uint64(available)
	if !ok {
		avail = free + cached
	}
	swapTotal, swapFree := field("SwapTotal_bytes"), field("SwapFree_bytes")
	lines := []string{
		fmt.Sprintf("%-6s %8s %8s %8s %8s %10s %9s", "", "total", "used", "free", "shared", "buff/cache", "available"),
		fmt.Sprintf("%-6s %8s %8s %8s %8s %10s %9s", "Mem:", human(total), human(total-avail), human(free),
			human(field("Shmem_bytes")), human(buffers+cached), human(avail)),
		fmt.Sprintf("%-6s %8s %8s %8s", "Swap:", human(swapTotal), human(swapTotal-swapFree), human(swapFree)),
	}
	if total > 0 {
		lines = append(lines, fmt.Sprintf("memory used: %.1f%%", 100*float64(total-avail)/float64(total)))
	}
	return lines, nil
}

// filesystems is df -h over the filesystems the host collector's
// filesystem family reports.
func (h *HostEvidence) filesystems(ctx context.Context) ([]string, error) {
	h.fsOnce.Do(func() {
		cfg := host.DefaultConfig()
		if h.Host != nil {
			cfg = *h.Host
		}
		h.fs = host.New(cfg, host.Options{Paths: host.Paths{Proc: h.Proc, Rootfs: h.Rootfs}})
	})
	fss, err := h.fs.Filesystems(ctx)
	if err != nil {
		return nil, err
	}
	lines := []string{fmt.Sprintf("%-20s %6s %6s %6s %5s %s", "Filesystem", "Size", "Used", "Avail", "Use%", "Mounted on")}
	seen := map[string]bool{}
	for _, f := range fss {
		if seen[f.MountPoint] || len(lines) > maxSectionEntries-1 || f.Size == 0 {
			continue
		}
		seen[f.MountPoint] = true
		// Use% as df counts it: of what is used plus what users may
		// still write (the root reserve left out).
		pct := 0.0
		if f.Used+f.Avail > 0 {
			pct = 100 * float64(f.Used) / float64(f.Used+f.Avail)
		}
		lines = append(lines, fmt.Sprintf("%-20s %6s %6s %6s %4.0f%% %s", f.Device, human(f.Size), human(f.Used), human(f.Avail), pct, f.MountPoint))
	}
	if len(lines) == 1 {
		return nil, nil // a header alone says nothing
	}
	return lines, nil
}

// psRow is one process as ps aux shows it.
type psRow struct {
	pr   procfs.Proc
	name string
	rss  uint64
	cpu  float64 // percent of one core over the process' life, as ps shows
}

// processes lists the top processes by memory and by CPU, as ps aux
// sorted shows them, from the process collector's procfs walk; command
// lines are read only for the rows shown.
func (h *HostEvidence) processes(now time.Time) (byMem, byCPU []string, err error) {
	var rows []psRow
	err = eachProcess(h.Proc, func(pr procfs.Proc, s procfs.ProcStat, bootTime uint64) {
		r := psRow{pr: pr, name: s.Comm, rss: uint64(s.ResidentMemory())}
		// The start in milliseconds since the epoch, as ps computes it
		// from the boot time and the start in clock ticks.
		startMs := int64(bootTime)*1000 + int64(s.Starttime*1000/userHZ)
		if age := now.Sub(time.UnixMilli(startMs)).Seconds(); age > 0 {
			r.cpu = 100 * s.CPUTime() / age
		}
		rows = append(rows, r)
	})
	if err != nil {
		return nil, nil, err
	}
	if len(rows) == 0 {
		return nil, nil, nil
	}
	line := func(p psRow) string {
		args, _ := p.pr.CmdLine()
		cmd := strings.TrimSpace(strings.Join(slices.DeleteFunc(args, func(a string) bool { return a == "" }), " "))
		if cmd == "" {
			cmd = "[" + p.name + "]"
		}
		return fmt.Sprintf("%7d %5.1f%% %8s %s", p.pr.PID, p.cpu, human(p.rss), cmd)
	}
	header := fmt.Sprintf("%7s %6s %8s %s", "PID", "%CPU", "RSS", "COMMAND")
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].rss > rows[j].rss })
	byMem = []string{header}
	for i := 0; i < len(rows) && i < topProcesses; i++ {
		byMem = append(byMem, line(rows[i]))
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].cpu > rows[j].cpu })
	byCPU = []string{header}
	for i := 0; i < len(rows) && i < topProcesses; i++ {
		byCPU = append(byCPU, line(rows[i]))
	}
	return byMem, byCPU, nil
}
