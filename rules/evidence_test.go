package rules

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
)

type provider []evidence.Section

func (p provider) Evidence() []evidence.Section { return p }

func TestHostEvidence(t *testing.T) {
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
	out := h.Snapshot(context.Background(), []map[string]string{
		{"alertname": "TokPulseErrors", "source": "app", "pattern": "error"},
		{"alertname": "TokPulseHealthCheckFailed", "probe": "health"},
	})
	if len(out) != 2 {
		t.Fatalf("%d snapshots for 2 alerts", len(out))
	}
	if out[0][0].Source != "log/app" || out[1][0].Source != "probe/health" {
		t.Fatalf("the alert's own evidence is not first: %s, %s", out[0][0].Source, out[1][0].Source)
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
		"Filesystems (df -h)":                          "Mounted on",
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
