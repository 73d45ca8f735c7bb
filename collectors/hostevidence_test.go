package collectors

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
)

type provider []evidence.Section

func (p provider) Evidence() []evidence.Section { return p }

// collectorSections are evidence sections as the collectors make them:
// two probe failures, two log patterns of one source, a check, a unit.
func collectorSections(now time.Time) provider {
	entry := func(text string, ago time.Duration) []evidence.Entry {
		return []evidence.Entry{{Time: now.Add(-ago), Text: text}}
	}
	return provider{
		{Source: "probe/health", Kind: "probe_failure", Title: "Last failure of probe health", Labels: map[string]string{"probe": "health"},
			Entries: entry("reason=status error=HTTP 503 status=503", time.Second)},
		{Source: "probe/performance", Kind: "probe_failure", Title: "Last failure of probe performance", Labels: map[string]string{"probe": "performance"},
			Entries: entry("reason=timeout", time.Second)},
		{Source: "log/app", Kind: "log_matches", Title: "Last lines of app matching error", Labels: map[string]string{"source": "app", "pattern": "error"},
			Entries: entry("ERROR boom", 2*time.Second)},
		{Source: "log/app", Kind: "log_matches", Title: "Last lines of app matching db_connection", Labels: map[string]string{"source": "app", "pattern": "db_connection"},
			Entries: entry("ECONNREFUSED 127.0.0.1:5432", time.Second)},
		{Source: "check/postgres", Kind: "check_output", Title: "Last failure of check postgres", Labels: map[string]string{"check": "postgres"},
			Entries: entry("exit=2", time.Second)},
		{Source: "unit/redis.service", Kind: "unit_state", Title: "systemd unit redis.service: failed", Labels: map[string]string{"unit": "redis.service"},
			Entries: entry("load=loaded active=failed sub=failed", time.Second)},
	}
}

// TestEvidenceSelection: each alert gets what explains it first, marked
// relevant (at most three sections), then related sections, then the
// host's state; never the evidence of other probes, checks, logs or units
// (issue 15: a health alert listed unrelated probe failures).
func TestEvidenceSelection(t *testing.T) {
	now := time.Now()
	h := &HostEvidence{Proc: "/proc", Rootfs: "/", Now: func() time.Time { return now },
		Providers: func() []evidence.Provider { return []evidence.Provider{collectorSections(now)} }}
	host := func(title string) string { return "host:" + title }
	for _, tc := range []struct {
		name     string
		subject  evidence.Subject
		relevant []string // sources (titles for host sections) marked relevant, in order
		then     []string // what must follow, in order, before the host's context
		never    []string // sources that must not appear
	}{
		{
			name:     "probe alert: its own failure, not the other probe's",
			subject:  evidence.Subject{Labels: map[string]string{"alertname": "TokPulseHealthCheckFailed", "probe": "health"}, Metrics: []string{"tokpulse_probe_success"}},
			relevant: []string{"probe/health"},
			never:    []string{"probe/performance", "check/postgres", "log/app", "unit/redis.service"},
		},
		{
			name:     "log-match alert: the lines of its pattern only",
			subject:  evidence.Subject{Labels: map[string]string{"alertname": "TokPulseDatabaseConnectionErrors", "source": "app", "pattern": "db_connection"}, Metrics: []string{"tokpulse_log_matches_total"}},
			relevant: []string{"log/app"},
			never:    []string{"probe/health", "check/postgres"},
		},
		{
			name:    "error-rate alert of a source: that source's patterns, newest first, as related",
			subject: evidence.Subject{Labels: map[string]string{"alertname": "TokPulseHighErrorRate", "source": "app"}, Metrics: []string{"tokpulse_http_requests_total"}},
			then:    []string{"Last lines of app matching db_connection", "Last lines of app matching error"},
			never:   []string{"probe/health", "unit/redis.service"},
		},
		{
			name:     "memory alert: free -h and the largest processes",
			subject:  evidence.Subject{Labels: map[string]string{"alertname": "TokPulseHighMemoryUsage"}, Metrics: []string{"node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes"}},
			relevant: []string{host("Memory and swap (free -h)"), host("Top processes by memory (ps aux --sort=-rss)")},
			never:    []string{"probe/health", "log/app", "check/postgres"},
		},
		{
			name:     "CPU alert: load and the busiest processes",
			subject:  evidence.Subject{Labels: map[string]string{"alertname": "TokPulseHighCPUUsage"}, Metrics: []string{"node_cpu_seconds_total"}},
			relevant: []string{host("Load average"), host("Top processes by CPU (ps aux --sort=-%cpu)")},
		},
		{
			name:     "check alert with a unit label: both its own, in provider order",
			subject:  evidence.Subject{Labels: map[string]string{"alertname": "X", "check": "postgres", "unit": "redis.service"}},
			relevant: []string{"check/postgres", "unit/redis.service"},
			never:    []string{"probe/health"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secs := h.Snapshot(context.Background(), []evidence.Subject{tc.subject})[0]
			name := func(s evidence.Section) string {
				if s.Source == "host" {
					return host(s.Title)
				}
				return s.Source
			}
			var got []string
			for _, s := range secs {
				got = append(got, name(s)+"/"+strconv.FormatBool(s.Relevant))
				if len(s.Entries) == 0 {
					t.Errorf("empty section %q", s.Title)
				}
				for _, n := range tc.never {
					if s.Source == n {
						t.Errorf("unrelated section %s (%s) in the evidence", n, s.Title)
					}
				}
			}
			i := 0
			for _, want := range tc.relevant {
				if i >= len(secs) || name(secs[i]) != want || !secs[i].Relevant {
					t.Fatalf("section %d: want %s marked relevant; got %v", i, want, got)
				}
				i++
			}
			for _, want := range tc.then {
				if i >= len(secs) || secs[i].Title != want && name(secs[i]) != want || secs[i].Relevant {
					t.Fatalf("section %d: want %s, not marked relevant; got %v", i, want, got)
				}
				i++
			}
			for ; i < len(secs); i++ {
				if secs[i].Source != "host" || secs[i].Relevant {
					t.Errorf("after what concerns the alert, only the host's state; got %v", got)
				}
			}
		})
	}
}

// TestEvidenceBounds: sections are cut to the last entries, each entry to
// its bytes, the whole to its budget, and secrets are redacted.
func TestEvidenceBounds(t *testing.T) {
	long := strings.Repeat("x", 2000)
	var many []evidence.Entry
	for i := range 50 {
		many = append(many, evidence.Entry{Text: "line " + strconv.Itoa(i)})
	}
	p := provider{
		{Source: "probe/health", Kind: "probe_failure", Title: "health", Labels: map[string]string{"probe": "health"},
			Entries: []evidence.Entry{{Text: "GET http://u:hunter2@127.0.0.1:3000/health: Authorization: Bearer abc.def"}}},
		{Source: "log/app", Kind: "log_matches", Title: "app errors", Labels: map[string]string{"source": "app", "pattern": "error"},
			Entries: append(many, evidence.Entry{Text: long})},
	}
	h := &HostEvidence{Proc: "/proc", Rootfs: "/", Providers: func() []evidence.Provider { return []evidence.Provider{p} }, Now: time.Now}
	out := h.Snapshot(context.Background(), []evidence.Subject{
		{Labels: map[string]string{"alertname": "TokPulseErrors", "source": "app", "pattern": "error"}},
		{Labels: map[string]string{"alertname": "TokPulseHealthCheckFailed", "probe": "health"}},
	})
	if len(out) != 2 {
		t.Fatalf("%d snapshots for 2 alerts", len(out))
	}
	logSec := out[0][0]
	if len(logSec.Entries) != maxSectionEntries || !strings.HasSuffix(logSec.Entries[len(logSec.Entries)-1].Text, "…") {
		t.Errorf("log section not bounded to the last %d entries, each of at most %d bytes", maxSectionEntries, maxEntryBytes)
	}
	probe := out[1][0].Entries[0].Text
	if strings.Contains(probe, "hunter2") || strings.Contains(probe, "abc.def") {
		t.Errorf("secret in evidence: %s", probe)
	}
	titles := map[string]string{}
	for _, s := range out[1] {
		var b strings.Builder
		for _, e := range s.Entries {
			b.WriteString(e.Text + "\n")
		}
		titles[s.Title] = b.String()
	}
	for title, want := range map[string]string{
		"Memory and swap (free -h)":                    "Mem:",
		"Load average":                                 "load average:",
		"Top processes by memory (ps aux --sort=-rss)": "PID",
		"Top processes by CPU (ps aux --sort=-%cpu)":   "COMMAND",
	} {
		if !strings.Contains(titles[title], want) {
			t.Errorf("section %q lacks %q:\n%s", title, want, titles[title])
		}
	}
	total := 0
	for _, s := range out[0] {
		for _, e := range s.Entries {
			total += len(e.Text)
		}
	}
	if total > maxEvidenceBytes {
		t.Errorf("evidence of %d bytes, limit %d", total, maxEvidenceBytes)
	}
}

// TestNoEmptyFilesystems: where no filesystem can be shown (a root with
// no mounts, as in a container), there is no "Filesystems (df -h)"
// section holding a header alone (issue 15). Where there are some, a disk
// alert shows its own mount point first.
func TestNoEmptyFilesystems(t *testing.T) {
	proc := t.TempDir()
	for _, f := range []string{"1/mountinfo", "self/mounts", "filesystems"} {
		if err := os.MkdirAll(filepath.Join(proc, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := &HostEvidence{Proc: proc, Rootfs: t.TempDir(), Now: time.Now}
	for _, s := range h.Snapshot(context.Background(), []evidence.Subject{{Labels: map[string]string{"alertname": "TokPulseLowDiskSpace", "mountpoint": "/"}, Metrics: []string{"node_filesystem_avail_bytes"}}})[0] {
		if strings.HasPrefix(s.Title, "Filesystems") {
			t.Errorf("a Filesystems section without filesystems: %+v", s)
		}
	}
	sec := evidence.Section{Entries: []evidence.Entry{{Text: "Filesystem Size Used Avail Use% Mounted on"}, {Text: "/dev/a 1G 1G 0 99% /"}, {Text: "/dev/b 1G 1G 0 99% /var"}, {Text: "/dev/c 1G 1G 0 99% /srv"}}}
	got := mountFirst(sec, "/srv")
	var rows []string
	for _, e := range got.Entries {
		rows = append(rows, strings.Fields(e.Text)[0])
	}
	if strings.Join(rows, " ") != "Filesystem /dev/c /dev/a /dev/b" {
		t.Errorf("rows %v, want the header, then /srv's, then the others in order", rows)
	}
}

// BenchmarkHostEvidence is one snapshot for one memory alert on this
// host's real /proc, as the tracker takes it when an alert starts firing
// (docs/performance.md, "Evidence snapshot").
func BenchmarkHostEvidence(b *testing.B) {
	now := time.Now()
	h := &HostEvidence{Proc: "/proc", Rootfs: "/", Now: time.Now,
		Providers: func() []evidence.Provider { return []evidence.Provider{collectorSections(now)} }}
	subj := []evidence.Subject{{Labels: map[string]string{"alertname": "TokPulseHighMemoryUsage"}, Metrics: []string{"node_memory_MemAvailable_bytes"}}}
	for b.Loop() {
		h.Snapshot(context.Background(), subj)
	}
}
