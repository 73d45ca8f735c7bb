package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// journalRemote is where Debian installs systemd-journal-remote (package
// systemd-journal-remote, installed by .ci/deps), which writes real
// journal files from the journal export format.
const journalRemote = "/lib/systemd/systemd-journal-remote"

// reloadSource is one kind of log source under TestReloadChangedSourceReadsEachLineOnce.
type reloadSource struct {
	name string
	// config is the source's entry in agent.yaml for reload i; every
	// reload changes it. Its pattern err (regexp "error") never changes.
	config func(dir string, i int) string
	// prepare creates what the source reads, empty.
	prepare func(t *testing.T, dir string)
	// write appends lines, one entry each.
	write func(t *testing.T, dir string, lines []string)
	// saved checks the read position in the state file against what
	// was written: a restart resumes there.
	saved func(t *testing.T, a *Agent, dir string) (bool, string)
	// batches of perBatch lines are written while reloads run.
	batches, perBatch int
}

// TestReloadChangedSourceReadsEachLineOnce: reloads that change a log
// source's settings while its file (or journal) grows hand it from the old
// source to its successor without reading any line twice or losing one:
// the line and match counters end equal to what was written, never above
// it, and the saved position is the end of what was written. The old and
// the new source must never read at the same time, or both read from the
// saved position.
func TestReloadChangedSourceReadsEachLineOnce(t *testing.T) {
	sources := []reloadSource{
		{
			name: "file",
			config: func(dir string, i int) string {
				poll, extra := "20ms", ""
				if i%2 == 1 {
					poll, extra = "30ms", ", {name: warn, regexp: warn}"
				}
				return fmt.Sprintf("logs:\n  - {name: app, paths: [%s/app.log], start_at: beginning, poll_interval: %s, patterns: [{name: err, regexp: error}%s]}\n",
					dir, poll, extra)
			},
			prepare: func(t *testing.T, dir string) {
				if err := os.WriteFile(filepath.Join(dir, "app.log"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			write: func(t *testing.T, dir string, lines []string) {
				var b []byte
				for _, l := range lines {
					b = append(append(b, l...), '\n')
				}
				f, err := os.OpenFile(filepath.Join(dir, "app.log"), os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Error(err)
					return
				}
				defer f.Close()
				if _, err := f.Write(b); err != nil {
					t.Error(err)
				}
			},
			saved: func(t *testing.T, a *Agent, dir string) (bool, string) {
				fi, err := os.Stat(filepath.Join(dir, "app.log"))
				if err != nil {
					t.Fatal(err)
				}
				ino := fi.Sys().(*syscall.Stat_t).Ino
				var st struct {
					Positions []struct {
						Ino    uint64 `json:"ino"`
						Offset int64  `json:"offset"`
					} `json:"positions"`
				}
				if _, err := a.store.Bucket("logs").GetJSON("app", &st); err != nil {
					t.Fatal(err)
				}
				return len(st.Positions) == 1 && st.Positions[0].Ino == ino && st.Positions[0].Offset == fi.Size(),
					fmt.Sprintf("saved %+v, file inode %d size %d", st.Positions, ino, fi.Size())
			},
			batches: 300, perBatch: 50,
		},
		{
			name: "journal",
			config: func(dir string, i int) string {
				extra := ""
				if i%2 == 1 {
					extra = ", {name: warn, regexp: warn}"
				}
				return fmt.Sprintf("journal:\n  - {name: app, directory: %s/journal, start_at: beginning, patterns: [{name: err, regexp: error}%s]}\n", dir, extra)
			},
			prepare: func(t *testing.T, dir string) {
				if err := os.MkdirAll(filepath.Join(dir, "journal"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			write: func(t *testing.T, dir string, lines []string) {
				var b bytes.Buffer
				for _, l := range lines {
					now := time.Now()
					fmt.Fprintf(&b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_SYSTEMD_UNIT=app.service\nPRIORITY=6\n_HOSTNAME=test\nMESSAGE=%s\n\n",
						now.UnixMicro(), now.UnixMicro(), l)
				}
				cmd := exec.Command(journalRemote, "-o", filepath.Join(dir, "journal", "remote.journal"), "-")
				cmd.Stdin = &b
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("systemd-journal-remote: %v\n%s (install the Debian package systemd-journal-remote)", err, out)
				}
			},
			saved: func(t *testing.T, a *Agent, dir string) (bool, string) {
				out, err := exec.Command("journalctl", "--directory="+filepath.Join(dir, "journal"), "--lines=1", "--output=json").Output()
				if err != nil {
					t.Fatalf("journalctl: %v", err)
				}
				var last struct {
					Cursor string `json:"__CURSOR"`
				}
				if err := json.Unmarshal(out, &last); err != nil {
					t.Fatalf("journalctl's last entry: %v", err)
				}
				var st struct {
					Cursor string `json:"cursor"`
				}
				if _, err := a.store.Bucket("journal").GetJSON("app", &st); err != nil {
					t.Fatal(err)
				}
				return st.Cursor == last.Cursor, fmt.Sprintf("saved cursor %q, last entry %q", st.Cursor, last.Cursor)
			},
			batches: 100, perBatch: 50,
		},
	}
	for _, s := range sources {
		t.Run(s.name, func(t *testing.T) { testReloadChangedSource(t, s) })
	}
}

func testReloadChangedSource(t *testing.T, s reloadSource) {
	dir := t.TempDir()
	s.prepare(t, dir)
	cfgFile := filepath.Join(dir, "agent.yaml")
	listen := testutil.FreeAddr(t)
	write := func(i int) {
		t.Helper()
		body := fmt.Sprintf(`agent: {interval: 1s, state_dir: %s/state}
web: {listen: %q}
host: {cpu: false, load: false, memory: false, boot_time: false, filesystem: {enabled: false}, disk: {enabled: false}, network: {enabled: false}}
%s`, dir, listen, s.config(dir, i))
		if err := os.WriteFile(cfgFile, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	a := runAgent(t, Options{ConfigFile: cfgFile, Notifier: nopNotifier{}})
	src := map[string]string{"source": "app"}
	errs := map[string]string{"source": "app", "pattern": "err"}
	testutil.Eventually(t, 20*time.Second, "the source running", func() bool {
		return value(t, a, "tokpulse_log_lines_total", src) == 0
	})

	// The writer appends batches of lines, every fifth an error, until
	// it has written them all; reloads run meanwhile. stop ends it early
	// when the test fails first.
	total := s.batches * s.perBatch
	errLines := total / 5
	var wg sync.WaitGroup
	stop := make(chan struct{})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	wg.Add(1)
	writing := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(writing)
		n := 0
		for range s.batches {
			select {
			case <-stop:
				return
			default:
			}
			lines := make([]string, 0, s.perBatch)
			for range s.perBatch {
				kind := "ok"
				if n%5 == 0 {
					kind = "error"
				}
				lines = append(lines, fmt.Sprintf("line %06d %s padding padding padding padding padding padding", n, kind))
				n++
			}
			s.write(t, dir, lines)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	// checkNotAbove fails at once on a count above what was written:
	// a line read twice stays counted twice.
	checkNotAbove := func() {
		t.Helper()
		if n := value(t, a, "tokpulse_log_lines_total", src); n > float64(total) {
			t.Fatalf("tokpulse_log_lines_total = %v, above the %d lines written: lines were read twice", n, total)
		}
		if n := value(t, a, "tokpulse_log_matches_total", errs); n > float64(errLines) {
			t.Fatalf("tokpulse_log_matches_total{pattern=err} = %v, above the %d error lines written: lines were matched twice", n, errLines)
		}
	}
	reloads := 0
	for i := 1; ; i++ {
		select {
		case <-writing:
		default:
			write(i)
			if !a.Reload() {
				t.Fatalf("reload %d refused", i)
			}
			reloads++
			checkNotAbove()
			time.Sleep(5 * time.Millisecond)
			continue
		}
		break
	}
	wg.Wait()
	if reloads < 10 {
		t.Fatalf("only %d reloads while the source grew; the test proves nothing", reloads)
	}
	testutil.EventuallyState(t, 30*time.Second, "every line counted once", func() (bool, string) {
		checkNotAbove()
		n, m := value(t, a, "tokpulse_log_lines_total", src), value(t, a, "tokpulse_log_matches_total", errs)
		return n == float64(total) && m == float64(errLines),
			fmt.Sprintf("lines %v of %d, err matches %v of %d, after %d reloads", n, total, m, errLines, reloads)
	})
	testutil.EventuallyState(t, 10*time.Second, "the position saved at the end of what was written", func() (bool, string) {
		return s.saved(t, a, dir)
	})
}
