package collectors

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tokpulse/tokpulse-agent/internal/state"
	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// journalRemote is where Debian installs systemd-journal-remote (package
// systemd-journal-remote), which writes real journal files from the
// journal export format.
const journalRemote = "/lib/systemd/systemd-journal-remote"

// journalWriter appends entries to a journal file in dir with
// systemd-journal-remote, as a remote journald would.
type journalWriter struct {
	t    *testing.T
	dir  string
	mono int64
}

// write appends one entry per message, for unit.
func (w *journalWriter) write(unit string, msgs ...string) {
	w.t.Helper()
	var b bytes.Buffer
	for _, m := range msgs {
		w.mono++
		fmt.Fprintf(&b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_SYSTEMD_UNIT=%s\nPRIORITY=3\n_HOSTNAME=test\n",
			time.Now().UnixMicro(), w.mono, unit)
		if strings.ContainsRune(m, '\n') || !utf8.ValidString(m) {
			// Export format: binary-safe field with a little-endian length.
			fmt.Fprint(&b, "MESSAGE\n")
			n := uint64(len(m))
			for i := 0; i < 8; i++ {
				b.WriteByte(byte(n >> (8 * i)))
			}
			fmt.Fprintf(&b, "%s\n\n", m)
			continue
		}
		fmt.Fprintf(&b, "MESSAGE=%s\n\n", m)
	}
	cmd := exec.Command(journalRemote, "-o", filepath.Join(w.dir, "remote.journal"), "-")
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil {
		w.t.Fatalf("systemd-journal-remote: %v\n%s (install the Debian package systemd-journal-remote)", err, out)
	}
}

// messages records what a Journal source processed.
func journalLines(j *Journal) uint64 { return j.pipe.stats.lines.Load() }

// TestJournalFollowAndResume follows real journal files while they are
// appended to, filtered by unit, then restarts the source: it must resume
// after the saved cursor with nothing lost and nothing read twice.
func TestJournalFollowAndResume(t *testing.T) {
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	if err := os.MkdirAll(jdir, 0o755); err != nil {
		t.Fatal(err)
	}
	w := &journalWriter{t: t, dir: jdir}
	w.write("tokpulse.service", "before the agent started: error")
	st, err := state.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	cfg := DefaultJournalConfig()
	cfg.Name, cfg.Directory, cfg.Units, cfg.StartAt = "tokpulse", jdir, []string{"tokpulse.service"}, "beginning"
	run := func() (*Journal, func()) {
		j := NewJournal(cfg, Options{State: st})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); j.Run(ctx) }()
		return j, func() { cancel(); wg.Wait() }
	}

	j1, stop1 := run()
	testutil.Eventually(t, 20*time.Second, "the first entry", func() bool { return journalLines(j1) == 1 })
	w.write("tokpulse.service", "database connection refused", "webhook delivery failed", "line one\nline two of a stack trace",
		"binary \xff\xfe payload: denied")
	w.write("other.service", "not ours: error")
	testutil.Eventually(t, 20*time.Second, "the appended entries", func() bool { return journalLines(j1) == 5 })
	stop1()
	if got := j1.pipe.patterns[0].matches.Load(); got != 3 {
		t.Errorf("error pattern matched %d entries, want 3 (one of them not UTF-8)", got)
	}

	// Written while the agent is stopped: must be read after the restart.
	w.write("tokpulse.service", "while stopped: login failed")
	j2, stop2 := run()
	defer stop2()
	testutil.Eventually(t, 20*time.Second, "the entry written while stopped", func() bool { return journalLines(j2) >= 1 })
	w.write("tokpulse.service", "after the restart: rate limit")
	testutil.Eventually(t, 20*time.Second, "the entry after the restart", func() bool { return journalLines(j2) >= 2 })
	// Nothing more may come: the other unit's entry and the entries read
	// before the restart must not appear. Make sure journalctl is caught
	// up with a marker entry, then check the count.
	w.write("tokpulse.service", "marker")
	testutil.Eventually(t, 20*time.Second, "the marker", func() bool { return journalLines(j2) >= 3 })
	if got := journalLines(j2); got != 3 {
		t.Errorf("after the restart %d entries were read, want 3 (nothing repeated)", got)
	}
	ev := j2.Evidence()
	if len(ev) == 0 || ev[0].Labels["source"] != "tokpulse" {
		t.Errorf("evidence: %+v", ev)
	}
}

// TestJournalInvalidCursor checks that a cursor journalctl rejects is
// counted and the source continues from the journal's tail.
func TestJournalInvalidCursor(t *testing.T) {
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	if err := os.MkdirAll(jdir, 0o755); err != nil {
		t.Fatal(err)
	}
	w := &journalWriter{t: t, dir: jdir}
	w.write("tokpulse.service", "old entry")
	st, err := state.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Bucket(journalStateBucket).PutJSON("tokpulse", journalState{Cursor: "s=nonsense;i=1", Since: time.Now()}); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultJournalConfig()
	cfg.Name, cfg.Directory = "tokpulse", jdir
	j := NewJournal(cfg, Options{State: st})
	j.minBO = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { j.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	testutil.Eventually(t, 20*time.Second, "the cursor reset", func() bool { return j.resets.Load() == 1 })
	testutil.Eventually(t, 20*time.Second, "journalctl running again", func() bool { return j.up.Load() })
	w.write("tokpulse.service", "new entry")
	testutil.Eventually(t, 20*time.Second, "the new entry", func() bool { return journalLines(j) >= 1 })
	if got := journalLines(j); got != 1 {
		t.Errorf("read %d entries; after a rejected cursor only new entries are read", got)
	}
}

// TestJournalRestartBackoff runs a journalctl that exits at once: the
// source must restart it with growing delays, reap every process and
// count the restarts.
func TestJournalRestartBackoff(t *testing.T) {
	cfg := DefaultJournalConfig()
	cfg.Name, cfg.Journalctl = "broken", "/bin/false"
	j := NewJournal(cfg, Options{})
	j.minBO, j.maxBO = 10*time.Millisecond, 40*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { j.Run(ctx); close(done) }()
	testutil.Eventually(t, 20*time.Second, "five restarts", func() bool { return j.starts.Load() >= 6 })
	cancel()
	<-done
	if e := j.pipe.stats.readErrors.Load(); e < 5 {
		t.Errorf("read errors %d, want one per failed run", e)
	}
	// No zombie: every child was waited for.
	out, _ := exec.Command("ps", "-o", "stat=", "--ppid", fmt.Sprint(os.Getpid())).Output()
	if strings.Contains(string(out), "Z") {
		t.Errorf("zombie children: %s", out)
	}
}

// writeEntries appends entries given as field maps (MESSAGE, PRIORITY,
// SYSLOG_IDENTIFIER, ...).
func (w *journalWriter) writeEntries(entries ...map[string]string) {
	w.t.Helper()
	var b bytes.Buffer
	for _, e := range entries {
		w.mono++
		fmt.Fprintf(&b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=test\n",
			time.Now().UnixMicro(), w.mono)
		for k, v := range e {
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
		b.WriteString("\n")
	}
	cmd := exec.Command(journalRemote, "-o", filepath.Join(w.dir, "remote.journal"), "-")
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil {
		w.t.Fatalf("systemd-journal-remote: %v\n%s", err, out)
	}
}

// TestJournalFilters checks priority and field matches on real journal
// files.
func TestJournalFilters(t *testing.T) {
	for _, tc := range []struct {
		name     string
		priority string
		matches  []string
		want     uint64
		marker   string // a priority the filter lets through
	}{
		{"priority err and more urgent", "err", nil, 2, "0"},
		{"priority range", "warning..notice", nil, 2, "4"},
		{"field match", "", []string{"SYSLOG_IDENTIFIER=tokpulse"}, 3, "6"},
		{"field match and priority", "err", []string{"SYSLOG_IDENTIFIER=tokpulse"}, 1, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jdir := t.TempDir()
			w := &journalWriter{t: t, dir: jdir}
			w.writeEntries(
				map[string]string{"MESSAGE": "crit", "PRIORITY": "2", "SYSLOG_IDENTIFIER": "tokpulse"},
				map[string]string{"MESSAGE": "err", "PRIORITY": "3", "SYSLOG_IDENTIFIER": "other"},
				map[string]string{"MESSAGE": "warning", "PRIORITY": "4", "SYSLOG_IDENTIFIER": "tokpulse"},
				map[string]string{"MESSAGE": "notice", "PRIORITY": "5", "SYSLOG_IDENTIFIER": "tokpulse"},
				map[string]string{"MESSAGE": "info", "PRIORITY": "6", "SYSLOG_IDENTIFIER": "other"},
			)
			cfg := DefaultJournalConfig()
			cfg.Name, cfg.Directory, cfg.StartAt, cfg.Priority, cfg.Matches = "f", jdir, "beginning", tc.priority, tc.matches
			j := NewJournal(cfg, Options{})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { j.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			testutil.Eventually(t, 20*time.Second, "the matching entries", func() bool { return journalLines(j) >= tc.want })
			// A marker the filter lets through shows journalctl is past
			// the other entries.
			w.writeEntries(map[string]string{"MESSAGE": "marker", "PRIORITY": tc.marker, "SYSLOG_IDENTIFIER": "tokpulse"})
			testutil.Eventually(t, 20*time.Second, "the marker", func() bool { return journalLines(j) >= tc.want+1 })
			if got := journalLines(j); got != tc.want+1 {
				t.Errorf("read %d entries, want %d and the marker", got, tc.want)
			}
		})
	}
}

// TestJournalRestartBeforeFirstEntry stops a source (start_at: end) before
// it read any entry: after the restart, the entries written meanwhile must
// be read, and the older ones still not.
func TestJournalRestartBeforeFirstEntry(t *testing.T) {
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	if err := os.MkdirAll(jdir, 0o755); err != nil {
		t.Fatal(err)
	}
	w := &journalWriter{t: t, dir: jdir}
	w.write("tokpulse.service", "old, before the first start")
	st, err := state.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := DefaultJournalConfig()
	cfg.Name, cfg.Directory = "tokpulse", jdir
	run := func() (*Journal, func()) {
		j := NewJournal(cfg, Options{State: st})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { j.Run(ctx); close(done) }()
		return j, func() { cancel(); <-done }
	}
	j1, stop1 := run()
	testutil.Eventually(t, 20*time.Second, "journalctl", func() bool { return j1.up.Load() })
	stop1()
	w.write("tokpulse.service", "written while stopped")
	j2, stop2 := run()
	defer stop2()
	testutil.Eventually(t, 20*time.Second, "the entry written while stopped", func() bool { return journalLines(j2) >= 1 })
	w.write("tokpulse.service", "marker")
	testutil.Eventually(t, 20*time.Second, "the marker", func() bool { return journalLines(j2) >= 2 })
	if got := journalLines(j2); got != 2 {
		t.Errorf("read %d entries, want the one written while stopped and the marker", got)
	}
}

// TestJournalArgsAcrossBoots: journalctl is started with --merge only when
// the saved cursor is of another boot than the current one, and never for
// a directory: journalctl --follow skips the entries already written after
// a cursor of another boot (packaging's TestJournalInContainer shows it on
// a real journald).
func TestJournalArgsAcrossBoots(t *testing.T) {
	bootFile := filepath.Join(t.TempDir(), "boot_id")
	if err := os.WriteFile(bootFile, []byte("0123abcd-0123-4567-89ab-0123456789ab\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const thisBoot = "s=5e1;i=2a;b=0123abcd0123456789ab0123456789ab;m=1f;t=5f0;x=77"
	const otherBoot = "s=5e1;i=2a;b=ffffffffffffffffffffffffffffffff;m=1f;t=5f0;x=77"
	tests := []struct {
		name, cursor, directory, bootFile string
		merge                             bool
	}{
		{"cursor of this boot", thisBoot, "", bootFile, false},
		{"cursor of another boot", otherBoot, "", bootFile, true},
		{"directory", otherBoot, "/var/log/remote", bootFile, false},
		{"no cursor", "", "", bootFile, false},
		{"boot ID unreadable", otherBoot, "", filepath.Join(t.TempDir(), "missing"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultJournalConfig()
			cfg.Name, cfg.Directory = "x", tt.directory
			j := NewJournal(cfg, Options{})
			j.bootIDFile = tt.bootFile
			j.st.Cursor = tt.cursor
			args := j.args(false)
			if got := strings.Contains(strings.Join(args, " "), "--merge"); got != tt.merge {
				t.Errorf("args %q: --merge %v, want %v", args, got, tt.merge)
			}
		})
	}
}

// TestJournalResumeBacklog resumes after more than ten entries were written
// while the source was stopped, into a journal nobody writes to afterwards:
// journalctl --follow --after-cursor without --no-tail showed ten and
// waited for the next write before showing the rest.
func TestJournalResumeBacklog(t *testing.T) {
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	if err := os.MkdirAll(jdir, 0o755); err != nil {
		t.Fatal(err)
	}
	w := &journalWriter{t: t, dir: jdir}
	st, err := state.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := DefaultJournalConfig()
	cfg.Name, cfg.Directory, cfg.StartAt = "backlog", jdir, "beginning"
	run := func() (*Journal, func()) {
		j := NewJournal(cfg, Options{State: st})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); j.Run(ctx) }()
		return j, func() { cancel(); wg.Wait() }
	}

	w.write("tokpulse.service", "first")
	j1, stop1 := run()
	testutil.Eventually(t, 20*time.Second, "the first entry", func() bool { return journalLines(j1) == 1 })
	stop1()

	backlog := make([]string, 25)
	for i := range backlog {
		backlog[i] = fmt.Sprintf("written while stopped %d", i)
	}
	w.write("tokpulse.service", backlog...)
	j2, stop2 := run()
	defer stop2()
	testutil.Eventually(t, 20*time.Second, "the whole backlog", func() bool { return journalLines(j2) == 25 })
}
