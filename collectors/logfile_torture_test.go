package collectors

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"

	"github.com/cespare/xxhash/v2"

	"github.com/tokpulse/tokpulse-agent/internal/reaper"
	"github.com/tokpulse/tokpulse-agent/internal/state"
	"github.com/tokpulse/tokpulse-agent/internal/tailer"
	"github.com/tokpulse/tokpulse-agent/internal/tailer/rotatetest"
)

func TestMain(m *testing.M) {
	// Checks run under a reaper, which is this test binary started again.
	reaper.Main()
	code := m.Run()
	testutil.RemoveBuiltBinary()
	os.Exit(code)
}

// agentProc is one run of the agent binary.
type agentProc struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	addr   string
}

func startAgent(t *testing.T, bin, config, addr string) *agentProc {
	t.Helper()
	a := &agentProc{stderr: &testutil.SyncBuffer{}, addr: addr}
	a.cmd = exec.Command(bin, "run", "--config", config)
	a.cmd.Stderr = a.stderr
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			_ = a.cmd.Process.Kill()
			_ = a.cmd.Wait()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := a.scrape(); err == nil {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not serve /metrics within 30 s; stderr:\n%s", a.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrape returns the agent's metrics as name{labels} → value.
func (a *agentProc) scrape() (map[string]float64, error) {
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

func (a *agentProc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := a.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	_ = a.cmd.Wait()
}

// loggedLines returns the line count the agent logged when its source
// stopped.
func (a *agentProc) loggedLines(t *testing.T) int64 {
	t.Helper()
	for _, l := range strings.Split(a.stderr.String(), "\n") {
		var rec struct {
			Msg   string `json:"msg"`
			Lines int64  `json:"lines"`
		}
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "Log source stopped" {
			return rec.Lines
		}
	}
	t.Fatalf("the agent did not log \"Log source stopped\"; stderr:\n%s", a.stderr.String())
	return 0
}

// nextSeq reads the state file (the agent must have exited) and returns the
// sequence number of the first line the saved positions have not passed.
func nextSeq(t *testing.T, stateDir, logDir string) int64 {
	t.Helper()
	st, err := state.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ls logState
	if ok, err := st.Bucket(logStateBucket).GetJSON("torture", &ls); !ok || err != nil {
		t.Fatalf("no saved positions (%v)", err)
	}
	// A file read to its end holds no unread line; the first unread line
	// is in the file with a position inside it, or, when every file was
	// read to its end, the one after the last line of the newest.
	best, afterAll := int64(-1), int64(-1)
	for _, p := range ls.Positions {
		name := findInode(logDir, p)
		if name == "" {
			continue // a deleted file, read to its end
		}
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) < p.FPLen || xxhash.Sum64(data[:p.FPLen]) != p.FP {
			// Truncated after the checkpoint: the position is in the copy.
			data = findCopy(t, logDir, p)
		}
		var seq int64
		if p.Offset < int64(len(data)) {
			s, ok := rotatetest.ParseSeq(data[p.Offset:])
			if !ok {
				t.Fatalf("position %d of %s is not at a line start", p.Offset, name)
			}
			seq = s
		} else {
			lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
			s, _ := rotatetest.ParseSeq(lines[len(lines)-1])
			afterAll = max(afterAll, s+1)
			continue
		}
		if best < 0 || seq < best {
			best = seq
		}
	}
	if best < 0 {
		return afterAll
	}
	return best
}

func findCopy(t *testing.T, dir string, p tailer.Position) []byte {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil && len(data) >= p.FPLen && xxhash.Sum64(data[:p.FPLen]) == p.FP {
			return data
		}
	}
	t.Fatalf("no file holds the content of the saved position %+v", p)
	return nil
}

func findInode(dir string, p tailer.Position) string {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		name := filepath.Join(dir, e.Name())
		fi, err := os.Stat(name)
		if err != nil {
			continue
		}
		if s, ok := fi.Sys().(*syscall.Stat_t); ok && uint64(s.Dev) == p.Dev && s.Ino == p.Ino {
			return name
		}
	}
	return ""
}

// TestAgentRotationTorture runs the agent binary on a file written at
// 20,000 lines/s for 20 s and rotated every 10,000 lines by the four
// methods in turn; the agent is stopped with SIGTERM once and killed with
// SIGKILL once on the way, while the writer goes on writing and rotating
// (only deletions are replaced by renames while no agent runs, since a file
// deleted then is gone from the rotation set).
//
// SIGTERM: the stopped agent counted exactly the lines before its saved
// position, and the next one starts there: nothing lost, nothing twice.
// SIGKILL: the next agent starts at the last checkpoint, so the lines read
// after it are counted twice; the bound is the lines of one checkpoint
// interval (CheckpointInterval × write rate), checked here with a factor 2
// of slack for a loaded machine.
func TestAgentRotationTorture(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s torture test; run without -short")
	}
	bin := testutil.AgentBinary(t)
	dir := t.TempDir()
	logDir := filepath.Join(dir, "log")
	stateDir := filepath.Join(dir, "state")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(logDir, "app.log")
	addr := testutil.FreeAddr(t)
	config := filepath.Join(dir, "agent.yaml")
	const rate = 20000
	cfg := fmt.Sprintf(`agent:
  interval: 1s
  state_dir: %s
  log: {format: json}
web:
  listen: %s
logs:
  - name: torture
    paths: [%s]
    start_at: beginning
    poll_interval: 50ms
    rotate_wait: 1s
    patterns: [{name: seq, regexp: '^seq='}]
    metrics:
      - name: torture_last_seq
        type: gauge
        regexp: '^seq=(?P<seq>\d+) '
        value: seq
`, stateDir, addr, path)
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	w := &rotatetest.Writer{Path: path, Rate: rate, Every: 10000, Duration: 20 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	werr := make(chan error, 1)
	go func() { werr <- w.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for _, err := os.Stat(path); err != nil; _, err = os.Stat(path) {
		if time.Now().After(deadline) {
			t.Fatal("writer did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}

	sleepUntil := func(d time.Duration) {
		// The phases are measured in writer time, not fixed sleeps: wait
		// until the writer has written that many lines.
		target := int64(d.Seconds() * rate)
		for w.Written() < target {
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Phase 1: until 6 s, then SIGTERM. From the stop until the next
	// agent is up, deletions become renames (a file deleted while no agent
	// holds it is gone from the rotation set); every other rotation goes on.
	a1 := startAgent(t, bin, config, addr)
	sleepUntil(6 * time.Second)
	w.Hold.Store(true)
	a1.stop(t, syscall.SIGTERM)
	c1 := a1.loggedLines(t)
	k1 := nextSeq(t, stateDir, logDir)
	if c1 != k1 {
		t.Errorf("SIGTERM: the agent counted %d lines but saved the position of line %d", c1, k1)
	}

	// Phase 2: until 13 s, then SIGKILL.
	a2 := startAgent(t, bin, config, addr)
	w.Hold.Store(false)
	sleepUntil(13 * time.Second)
	w.Hold.Store(true)
	w.Freeze.Store(true)
	// With the writer frozen, wait until the agent has read every line
	// written, so that what it read is known exactly when it is killed: a
	// scrape taken while it still catches up is only a lower bound, and the
	// checkpoint could then lie beyond it.
	var lastRead int64
	caughtUp := time.Now().Add(15 * time.Second)
	for {
		m, err := a2.scrape()
		if err == nil {
			lastRead = int64(m[`torture_last_seq{source="torture"}`])
			if lastRead == w.Written()-1 {
				break
			}
		}
		if time.Now().After(caughtUp) {
			t.Fatalf("the agent did not catch up with the writer: read through line %d of %d", lastRead, w.Written())
		}
		time.Sleep(20 * time.Millisecond)
	}
	a2.stop(t, syscall.SIGKILL)
	k2 := nextSeq(t, stateDir, logDir)
	dup := lastRead + 1 - k2

	// Phase 3: to the end.
	a3 := startAgent(t, bin, config, addr)
	w.Hold.Store(false)
	w.Freeze.Store(false)
	if err := <-werr; err != nil {
		t.Fatalf("writer: %v", err)
	}
	written := w.Written()
	want := float64(written - k2)
	deadline = time.Now().Add(30 * time.Second)
	var got float64
	for {
		m, err := a3.scrape()
		if err == nil {
			got = m[`tokpulse_log_lines_total{source="torture"}`]
			if got >= want && m[`torture_last_seq{source="torture"}`] == float64(written-1) {
				break
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	a3.stop(t, syscall.SIGTERM)
	c3 := a3.loggedLines(t)
	t.Logf("written %d lines, rotations %v; SIGTERM after %d lines (saved position: line %d); SIGKILL: read through line %d, checkpoint at line %d, so at least %d lines are read twice (bound %d); last agent counted %d of the %d after the checkpoint",
		written, w.Rotations(), c1, k1, lastRead, k2, dup, rate*int64(CheckpointInterval/time.Second), c3, written-k2)
	if float64(c3) != want {
		t.Errorf("after the kill the agent counted %d lines; the %d lines after the checkpoint must be counted exactly once", c3, written-k2)
	}
	if k2 < k1 || k2 > lastRead+1 {
		t.Errorf("checkpoint after the kill at line %d: must lie between the previous one (%d) and the last line read (%d)", k2, k1, lastRead)
	}
	if bound := 2 * rate * int64(CheckpointInterval/time.Second); dup > bound {
		t.Errorf("%d lines read after the last checkpoint; more than %d", dup, bound)
	}
	for meth, n := range w.Rotations() {
		if n < 3 {
			t.Errorf("only %d rotations by %s", n, meth)
		}
	}
}
