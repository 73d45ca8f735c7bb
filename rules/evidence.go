package rules

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/process"

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
// processes), plus the sections of the collectors' evidence providers.
type HostEvidence struct {
	// Proc and Rootfs are the host's /proc and / (agent.paths).
	Proc, Rootfs string
	// Providers returns the collectors that keep evidence; may be nil.
	Providers func() []evidence.Provider
	Redactor  *evidence.Redactor
	Now       func() time.Time
}

// Snapshot implements incident.EvidenceSource. The host part is read once and
// shared by every alert of the evaluation.
func (h *HostEvidence) Snapshot(ctx context.Context, alerts []map[string]string) [][]evidence.Section {
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	red := h.Redactor
	if red == nil {
		red = evidence.NewRedactor()
	}
	ctx = context.WithValue(ctx, common.EnvKey, common.EnvMap{
		common.HostProcEnvKey: h.Proc,
		common.HostRootEnvKey: h.Rootfs,
	})
	host := h.hostSections(ctx, now())
	var provided []evidence.Section
	if h.Providers != nil {
		for _, p := range h.Providers() {
			provided = append(provided, p.Evidence()...)
		}
	}
	out := make([][]evidence.Section, len(alerts))
	for i, lset := range alerts {
		var mine, rest []evidence.Section
		for _, s := range provided {
			if len(s.Labels) > 0 && labelsIn(s.Labels, lset) {
				mine = append(mine, s)
			} else {
				rest = append(rest, s)
			}
		}
		all := append(append(append([]evidence.Section{}, mine...), host...), rest...)
		out[i] = bound(all, red)
	}
	return out
}

func labelsIn(want, have map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
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

func (h *HostEvidence) hostSections(ctx context.Context, now time.Time) []evidence.Section {
	sec := func(kind, title string, lines []string) evidence.Section {
		s := evidence.Section{Source: "host", Kind: kind, Title: title}
		for _, l := range lines {
			s.Entries = append(s.Entries, evidence.Entry{Time: now, Text: l})
		}
		return s
	}
	var out []evidence.Section
	out = append(out, sec("host", "Memory and swap (free -h)", h.memory(ctx)))
	out = append(out, sec("host", "Filesystems (df -h)", h.filesystems(ctx)))
	if avg, err := load.AvgWithContext(ctx); err == nil {
		out = append(out, sec("host", "Load average", []string{fmt.Sprintf("load average: %.2f, %.2f, %.2f", avg.Load1, avg.Load5, avg.Load15)}))
	}
	byMem, byCPU := h.processes(ctx, now)
	out = append(out, sec("host", "Top processes by memory (ps aux --sort=-rss)", byMem))
	out = append(out, sec("host", "Top processes by CPU (ps aux --sort=-%cpu)", byCPU))
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

func (h *HostEvidence) memory(ctx context.Context) []string {
	v, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return []string{"memory: " + err.Error()}
	}
	lines := []string{
		fmt.Sprintf("%-6s %8s %8s %8s %8s %10s %9s", "", "total", "used", "free", "shared", "buff/cache", "available"),
		fmt.Sprintf("%-6s %8s %8s %8s %8s %10s %9s", "Mem:", human(v.Total), human(v.Total-v.Available), human(v.Free),
			human(v.Shared), human(v.Buffers+v.Cached), human(v.Available)),
	}
	if s, err := mem.SwapMemoryWithContext(ctx); err == nil {
		lines = append(lines, fmt.Sprintf("%-6s %8s %8s %8s", "Swap:", human(s.Total), human(s.Used), human(s.Free)))
	}
	if v.Total > 0 {
		lines = append(lines, fmt.Sprintf("memory used: %.1f%%", 100*float64(v.Total-v.Available)/float64(v.Total)))
	}
	return lines
}

func (h *HostEvidence) filesystems(ctx context.Context) []string {
	parts, err := disk.PartitionsWithContext(ctx, false)
	if err != nil {
		return []string{"filesystems: " + err.Error()}
	}
	lines := []string{fmt.Sprintf("%-20s %6s %6s %6s %5s %s", "Filesystem", "Size", "Used", "Avail", "Use%", "Mounted on")}
	seen := map[string]bool{}
	for _, p := range parts {
		if seen[p.Mountpoint] || len(lines) > maxSectionEntries-1 {
			continue
		}
		seen[p.Mountpoint] = true
		u, err := disk.UsageWithContext(ctx, filepath.Join(h.Rootfs, p.Mountpoint))
		if err != nil || u.Total == 0 {
			continue
		}
		lines = append(lines, fmt.Sprintf("%-20s %6s %6s %6s %4.0f%% %s", p.Device, human(u.Total), human(u.Used), human(u.Free), u.UsedPercent, p.Mountpoint))
	}
	return lines
}

type procInfo struct {
	pid  int32
	name string
	cmd  string
	rss  uint64
	cpu  float64 // percent of one core over the process' life, as ps shows
}

func (h *HostEvidence) processes(ctx context.Context, now time.Time) (byMem, byCPU []string) {
	procs, err := process.ProcessesWithContext(ctx)
	if err != nil {
		msg := []string{"processes: " + err.Error()}
		return msg, msg
	}
	var infos []procInfo
	for _, p := range procs {
		mi, err := p.MemoryInfoWithContext(ctx)
		if err != nil {
			continue // exited meanwhile, or a kernel thread
		}
		info := procInfo{pid: p.Pid, rss: mi.RSS}
		info.name, _ = p.NameWithContext(ctx)
		info.cmd, _ = p.CmdlineWithContext(ctx)
		if t, err := p.TimesWithContext(ctx); err == nil {
			if ct, err := p.CreateTimeWithContext(ctx); err == nil {
				if age := now.Sub(time.UnixMilli(ct)).Seconds(); age > 0 {
					info.cpu = 100 * (t.User + t.System) / age
				}
			}
		}
		infos = append(infos, info)
	}
	line := func(p procInfo) string {
		cmd := p.cmd
		if cmd == "" {
			cmd = "[" + p.name + "]"
		}
		cmd = strings.TrimSpace(cmd)
		return fmt.Sprintf("%7d %5.1f%% %8s %s", p.pid, p.cpu, human(p.rss), cmd)
	}
	header := fmt.Sprintf("%7s %6s %8s %s", "PID", "%CPU", "RSS", "COMMAND")
	sort.SliceStable(infos, func(i, j int) bool { return infos[i].rss > infos[j].rss })
	byMem = []string{header}
	for i := 0; i < len(infos) && i < topProcesses; i++ {
		byMem = append(byMem, line(infos[i]))
	}
	sort.SliceStable(infos, func(i, j int) bool { return infos[i].cpu > infos[j].cpu })
	byCPU = []string{header}
	for i := 0; i < len(infos) && i < topProcesses; i++ {
		byCPU = append(byCPU, line(infos[i]))
	}
	return byMem, byCPU
}
