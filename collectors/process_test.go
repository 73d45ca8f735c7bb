package collectors

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

func TestProcesses(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tpk-proc-test")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	for _, arg := range []string{"4242", "4242", "4243"} {
		c := exec.Command(bin, arg)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	t.Cleanup(func() {
		for _, c := range cmds {
			if c.ProcessState == nil {
				c.Process.Kill()
				c.Wait()
			}
		}
	})
	started := time.Now()

	cfg := decodeConfig(t, fmt.Sprintf(`
processes:
- name: tpk-proc-test
- name: by_exe
  match: {exe: '^%s$'}
- name: by_cmdline
  match: {cmdline: 'tpk-proc-test 4242$'}
- name: both
  match: {name: '^tpk-proc-test$', cmdline: '4243$'}
- name: absent
  match: {name: '^no-such-process-here$'}
`, bin))
	p := NewProcesses(cfg.Processes, Options{})
	got := collect(t, p)
	for k, want := range map[string]float64{
		`tokpulse_process_up{process="tpk-proc-test"}`:    1,
		`tokpulse_process_count{process="tpk-proc-test"}`: 3,
		`tokpulse_process_count{process="by_exe"}`:        3,
		`tokpulse_process_count{process="by_cmdline"}`:    2,
		`tokpulse_process_count{process="both"}`:          1,
		`tokpulse_process_up{process="absent"}`:           0,
		`tokpulse_process_count{process="absent"}`:        0,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
	if v := got[`tokpulse_process_resident_memory_bytes{process="tpk-proc-test"}`]; v < 3*4096 {
		t.Errorf("resident memory = %v, want at least a page per process", v)
	}
	if v := got[`tokpulse_process_threads{process="tpk-proc-test"}`]; v < 3 {
		t.Errorf("threads = %v, want at least 3", v)
	}
	if v := got[`tokpulse_process_open_fds{process="tpk-proc-test"}`]; v < 9 {
		t.Errorf("open fds = %v, want at least stdin, stdout and stderr of each", v)
	}
	if v := got[`tokpulse_process_cpu_seconds_total{process="tpk-proc-test"}`]; v < 0 {
		t.Errorf("cpu seconds = %v", v)
	}
	// The boot time and clock tick make the start time exact to 10 ms; the
	// margin only covers the test's own start-up.
	if v := got[`tokpulse_process_start_time_seconds{process="tpk-proc-test"}`]; v < float64(started.Add(-time.Minute).Unix()) || v > float64(started.Add(time.Minute).Unix()) {
		t.Errorf("start time = %v, want about %v", v, started.Unix())
	}
	if _, ok := got[`tokpulse_process_start_time_seconds{process="absent"}`]; ok {
		t.Error("start time reported for a group with no process")
	}

	ev := p.Evidence()
	found := false
	for _, s := range ev {
		if s.Labels["process"] == "by_cmdline" {
			found = len(s.Entries) == 2 && strings.Contains(s.Entries[0].Text, "tpk-proc-test 4242")
		}
	}
	if !found {
		t.Errorf("evidence lacks the two by_cmdline processes: %+v", ev)
	}

	if err := cmds[0].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmds[0].Wait()
	got = collect(t, p)
	if v := got[`tokpulse_process_count{process="tpk-proc-test"}`]; v != 2 {
		t.Errorf("count after a kill = %v, want 2", v)
	}
	if v := got[`tokpulse_process_count{process="by_cmdline"}`]; v != 1 {
		t.Errorf("by_cmdline count after a kill = %v, want 1", v)
	}
}

func TestProcessesMissingProc(t *testing.T) {
	p := NewProcesses([]ProcessConfig{{Name: "x"}}, Options{Paths: Paths{Proc: "/nonexistent/proc", Sys: "/sys", Rootfs: "/"}})
	if _, err := p.Scan(); err == nil || !strings.Contains(err.Error(), "/nonexistent/proc") {
		t.Fatalf("err = %v, want one naming the proc path", err)
	}
}

// BenchmarkProcessesScan measures one gather of three groups on this
// machine's /proc (how many processes it has varies; see the output of ps).
func BenchmarkProcessesScan(b *testing.B) {
	cfg := []ProcessConfig{{Name: "node"}, {Name: "sleep"}, {Name: "workers", Match: ProcessMatch{Cmdline: yamlx.MustRegexp(`worker\.js`)}}}
	p := NewProcesses(cfg, Options{})
	for b.Loop() {
		if _, err := p.Scan(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestProcessesFixture reads the fake /proc under testdata/proc through
// agent.paths.proc: two node processes, a zombie and a kernel thread.
func TestProcessesFixture(t *testing.T) {
	cfg := decodeConfig(t, `
processes:
- name: node
- name: worker
  match: {cmdline: 'worker\.js'}
- name: kthreadd
`)
	p := NewProcesses(cfg.Processes, Options{Paths: Paths{Proc: "testdata/proc", Sys: "/sys", Rootfs: "/"}})
	got := collect(t, p)
	pageSize := float64(os.Getpagesize())
	for k, want := range map[string]float64{
		`tokpulse_process_up{process="node"}`:                      1,
		`tokpulse_process_count{process="node"}`:                   2, // the zombie is not counted
		`tokpulse_process_resident_memory_bytes{process="node"}`:   (12800 + 6400) * pageSize,
		`tokpulse_process_cpu_seconds_total{process="node"}`:       (250 + 50 + 100 + 100) / 100.0,
		`tokpulse_process_threads{process="node"}`:                 18,
		`tokpulse_process_open_fds{process="node"}`:                8,
		`tokpulse_process_start_time_seconds{process="node"}`:      1764200000 + 100000/100.0,
		`tokpulse_process_count{process="worker"}`:                 1,
		`tokpulse_process_resident_memory_bytes{process="worker"}`: 6400 * pageSize,
		`tokpulse_process_count{process="kthreadd"}`:               0, // kernel threads are not watched
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
	for _, s := range p.Evidence() {
		for _, e := range s.Entries {
			if strings.Contains(e.Text, "abc123") {
				t.Errorf("evidence leaks the token on a command line: %s", e.Text)
			}
		}
	}
}
