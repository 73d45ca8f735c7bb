package tailer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// logrotate runs Debian's logrotate once, forced, on path with the given
// directives (copytruncate plus e.g. "compress"), as cron or the systemd
// timer would.
func logrotate(t *testing.T, bin, path string, directives ...string) {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "logrotate.conf")
	body := fmt.Sprintf("%s {\n  copytruncate\n  rotate 5\n  missingok\n  %s\n}\n", path, strings.Join(directives, "\n  "))
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--force", "--state", filepath.Join(dir, "status"), conf).CombinedOutput()
	if err != nil {
		t.Fatalf("logrotate: %v\n%s", err, out)
	}
}

// TestCopytruncateWithLogrotate rotates a followed file with a real
// logrotate (copytruncate) and checks what the tailer reads and says: a
// warning only when lines may have been lost, else how many bytes it
// recovered from the copy or that it had read everything already. Issue 15
// reported the warning at every copytruncate rotation of a 25-minute soak
// although no line was lost: a copy exactly as long as what the tailer had
// read was not taken for the copy.
func TestCopytruncateWithLogrotate(t *testing.T) {
	bin := testutil.Require(t, "logrotate")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// behind is written after the tailer's last read and before the
		// rotation: the lines only the copy holds.
		behind     string
		directives []string
		recovered  int64
		// log is what the tailer must say, warn whether that is a warning.
		log  string
		warn bool
	}{
		{"caught up", "", nil, 0,
			`msg="Log file was truncated (copytruncate); the reader had read all of it, nothing was lost" path=PATH copy=PATH.1`, false},
		{"behind", "late 1\nlate 2\n", nil, 14,
			`msg="Log file was truncated (copytruncate); read the lines written since the last read from the copy" path=PATH copy=PATH.1 bytes=14`, false},
		{"behind, copy compressed at once", "late 1\nlate 2\n", []string{"compress"}, 0,
			`msg="Log file was truncated and no uncompressed copy with its content was found; lines written since the last read may be lost (with logrotate, add delaycompress next to copytruncate)" path=PATH offset=11`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "app.log")
			appendFile(t, p, "early 1\nea\n")
			var logs testutil.SyncBuffer
			tl, r := newTest(t, Config{Globs: []string{p}, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
			tl.Start(nil, false, time.Time{})
			tl.Poll(ctx)
			appendFile(t, p, tc.behind)
			logrotate(t, bin, p, tc.directives...)
			appendFile(t, p, "after\n")
			tl.Poll(ctx)

			want := []string{"early 1", "ea"}
			if tc.recovered > 0 {
				want = append(want, "late 1", "late 2")
			}
			want = append(want, "after")
			if got := strings.Join(r.lines, "|"); got != strings.Join(want, "|") {
				t.Errorf("lines %q, want %q", got, strings.Join(want, "|"))
			}
			if r.trunc != 1 || r.copied != tc.recovered {
				t.Errorf("%d truncations, %d bytes recovered; want 1 and %d", r.trunc, r.copied, tc.recovered)
			}
			out := logs.String()
			if want := strings.ReplaceAll(tc.log, "PATH", p); !strings.Contains(out, want) {
				t.Errorf("log lacks %s", want)
			}
			if got := strings.Contains(out, "level=WARN"); got != tc.warn {
				t.Errorf("warning logged: %v, want %v", got, tc.warn)
			}
			if t.Failed() {
				t.Logf("log:\n%s", out)
			}
		})
	}
}
