package packaging

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/agent"
	"github.com/tokpulse/tokpulse-agent/collectors"
	"github.com/tokpulse/tokpulse-agent/internal/testutil/nspawn"
)

// burstLines are the lines the burst writes to each file, in turn; the
// expected pattern counts follow from matching them with the shipped
// agent.yaml's expressions.
var burstLines = map[string][]string{
	"access": {
		`10.0.0.1 - - [01/Dec/2026:12:00:00 +0000] "GET /api/feed HTTP/1.1" 200 512 "-" "k6" rt_ms=12`,
		`10.0.0.2 - - [01/Dec/2026:12:00:00 +0000] "POST /api/like HTTP/1.1" 201 64 "-" "k6" rt_ms=48`,
		`10.0.0.3 - - [01/Dec/2026:12:00:00 +0000] "GET /api/feed HTTP/1.1" 500 0 "-" "k6" rt_ms=2300`,
		`10.0.0.4 - - [01/Dec/2026:12:00:00 +0000] "GET /api/user HTTP/1.1" 429 0 "-" "k6" rt_ms=1`,
		`10.0.0.5 - - [01/Dec/2026:12:00:00 +0000] "GET /static/a.js HTTP/1.1" 304 0 "-" "k6" rt_ms=3`,
	},
	"app": {
		`2026-12-01T12:00:00Z INFO request served path=/api/feed`,
		`2026-12-01T12:00:00Z ERROR database connection refused host=db1`,
		`2026-12-01T12:00:00Z WARN rate limit reached for token abc`,
		`2026-12-01T12:00:00Z INFO webhook delivered id=7`,
	},
	"error": {
		`2026-12-01T12:00:00Z ERROR webhook delivery failed status=502`,
		`2026-12-01T12:00:00Z ERROR auth: login denied for user=bob`,
		`2026-12-01T12:00:00Z ERROR unhandled exception in worker`,
	},
}

// TestBurstInContainer: the packaged agent, under its unit's limits, takes
// a burst of 200,000 lines per second on three log files for 60 seconds
// on a booted Debian. A drop-in gives it only 10 % of a core, as on a host
// too busy for it to keep up: it must shed the optional work (log-derived
// metrics, evidence) and count it, stay inside MemoryMax= and TasksMax=,
// never be OOM-killed nor restarted by the watchdog, and once the burst is
// over count every line and every pattern match exactly.
func TestBurstInContainer(t *testing.T) {
	const (
		rate     = 200_000 // lines per second, all files together
		duration = 60 * time.Second
		quota    = "10%"
	)
	b := buildPackages(t, "1.0.0")
	c := nspawn.Start(t, nspawn.Options{Include: []string{"procps"}})
	h := host{t: t, c: c}
	ctx := context.Background()
	if err := c.CopyIn(ctx, b.deb, "/root/"+filepath.Base(b.deb), 0o644); err != nil {
		t.Fatal(err)
	}
	// The files exist (empty) before the agent starts, so that it follows
	// them from their start; the shipped configuration names them.
	h.sh("mkdir -p /var/log/tokpulse && cd /var/log/tokpulse && touch app.log error.log access.log && chmod 644 *.log")
	h.sh("dpkg -i /root/" + filepath.Base(b.deb))
	h.dropIn("burst.conf", "[Service]\n# A host too busy for the agent to keep up with the burst.\nCPUQuota="+quota+"\n")
	h.sh("systemctl restart tokpulse-agent")
	h.metricsMatch("the three sources following their files",
		`^tokpulse_log_files\{source="app"\} 1$`, `^tokpulse_log_files\{source="error"\} 1$`, `^tokpulse_log_files\{source="access"\} 1$`)
	pid := h.show("MainPID")
	lim := enforceUnitLimits(t, h, pid)
	// The agent runs with the unit's timer slack. systemd sets it before
	// exec and every thread inherits it when created, the Go runtime's
	// monitor included, which starts before any of the agent's code and
	// could not be given it otherwise (the kernel shows the main
	// thread's).
	if slack := strings.TrimSpace(h.sh("cat /proc/" + pid + "/timerslack_ns")); slack != "10000000" {
		t.Errorf("the agent's timer slack is %s ns, want TimerSlackNSec=10ms (10000000)", slack)
	}

	// Write from the host into the container's files (its overlay root),
	// every 10 ms a batch per file, each batch one write.
	dir := fmt.Sprintf("/proc/%d/root/var/log/tokpulse", c.PID())
	written := map[string]*int64{}
	var wg sync.WaitGroup
	start := time.Now()
	for name, lines := range burstLines {
		n := new(int64)
		written[name] = n
		f, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer f.Close()
			var buf []byte
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for now := range tick.C {
				if now.Sub(start) >= duration {
					return
				}
				// Catch up with the rate if a tick came late.
				due := int64(now.Sub(start).Seconds()*rate/3) - *n
				buf = buf[:0]
				for i := range due {
					buf = append(buf, lines[(*n+i)%int64(len(lines))]...)
					buf = append(buf, '\n')
				}
				if _, err := f.Write(buf); err != nil {
					t.Error(err)
					return
				}
				*n += due
			}
		}()
	}
	// Meanwhile, what the agent uses.
	var samples []string
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for sampling := true; sampling; {
		select {
		case <-done:
			sampling = false
		case <-time.After(10 * time.Second):
			samples = append(samples, lim.sample())
		}
	}
	elapsed := time.Since(start)
	total := int64(0)
	for _, n := range written {
		total += *n
	}
	t.Logf("wrote %d lines in %s (%.0f lines/s): app %d, error %d, access %d", total, elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds(), *written["app"], *written["error"], *written["access"])
	t.Logf("during the burst, every 10 s (memory.current memory.peak pids.current cpu.stat): %q", samples)

	// The files hold what the writer counted, line for line: a count of
	// the agent's that differs is then the agent's, not the writer's or
	// the filesystem's.
	for name, lines := range burstLines {
		n, malformed, err := countFileLines(filepath.Join(dir, name+".log"), lines)
		if err != nil {
			t.Fatal(err)
		}
		if n != *written[name] || malformed != 0 {
			t.Errorf("%s.log holds %d lines (%d not of the burst), the writer counted %d", name, n, malformed, *written[name])
		}
	}

	// Every line counted, every match exact, once the agent has caught up.
	want := map[string]float64{}
	for name, lines := range burstLines {
		want[`tokpulse_log_lines_total{source="`+name+`"}`] = float64(*written[name])
		for pattern, re := range shippedPatterns(t, name) {
			var m int64
			for i, l := range lines {
				if re.MatchString(l) {
					m += (*written[name] - int64(i) + int64(len(lines)) - 1) / int64(len(lines))
				}
			}
			want[`tokpulse_log_matches_total{pattern="`+pattern+`",source="`+name+`"}`] = float64(m)
		}
	}
	caughtUp := time.Now()
	var body string
	h.eventually("every line of the burst counted", 10*time.Minute, func() (bool, string) {
		m, err := h.metrics()
		if err != nil {
			return false, err.Error()
		}
		body = m
		for series, v := range want {
			if got, ok := metricValue(m, series); !ok || got != v {
				if ok && got > v {
					// Counters only grow: a line counted twice is
					// never undone by waiting.
					t.Fatalf("%s = %v, want %v: lines counted more than once\n%s\njournal:\n%s", series, got, v, logSourceMetrics(m), h.journal())
				}
				return false, fmt.Sprintf("%s = %v, want %v", series, got, v)
			}
		}
		return true, ""
	})
	t.Logf("caught up %s after the burst ended", time.Since(caughtUp).Round(time.Second))
	shedMetrics, _ := metricValue(body, `tokpulse_log_lines_shed_total{source="access",work="metrics"}`)
	shedEvidence, _ := metricValue(body, `tokpulse_log_lines_shed_total{source="app",work="evidence"}`)
	t.Logf("shed: the metrics of %.0f access lines, the evidence of %.0f app lines", shedMetrics, shedEvidence)
	// Which source falls far enough behind to shed depends on how fast
	// the pipeline is against the 10 % quota (since the one-pass literal
	// scan the access source may keep up while the app source, with six
	// patterns and their evidence, does not); some optional work must be
	// shed, and every count above is exact regardless.
	if shedMetrics+shedEvidence == 0 {
		t.Error("the agent shed no optional work (access metrics, app evidence) under the burst")
	}

	// Inside its limits, never killed nor restarted.
	if got := h.show("MainPID"); got != pid {
		t.Errorf("MainPID %s after the burst, %s before: the agent was restarted\n%s", got, pid, h.journal())
	}
	if got := h.show("NRestarts"); got != "0" {
		t.Errorf("NRestarts = %s", got)
	}
	lim.check(t)
	if j := h.journal(); strings.Contains(j, "Watchdog timeout") {
		t.Errorf("the watchdog fired:\n%s", j)
	}
}

// shippedPatterns returns the patterns of source in the shipped
// agent.yaml (the default four where it names none), as the agent
// compiles them.
func shippedPatterns(t *testing.T, source string) map[string]*regexp.Regexp {
	t.Helper()
	file := filepath.Join(repoRoot(t), "packaging", "agent.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.Parse(file, data)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range cfg.Logs {
		if l.Name != source {
			continue
		}
		ps := l.Patterns
		if len(ps) == 0 {
			ps = collectors.DefaultLogPatterns()
		}
		out := map[string]*regexp.Regexp{}
		for _, p := range ps {
			out[p.Name] = p.Regexp.Regexp
		}
		return out
	}
	t.Fatalf("the shipped agent.yaml has no log source %q", source)
	return nil
}

// unitLimits are the unit's resource limits as the kernel enforces them on
// the agent, and how to read what it uses.
type unitLimits struct {
	// dir is the agent's cgroup: the unit's own (cgroup v2 inside the
	// container), or, where the container's controllers are read-only
	// (this build machine's legacy hierarchy), cgroups made on the host
	// with the unit's values (memory, cpu, pids → directory).
	native bool
	dir    string
	v1     map[string]string
	h      host
	memMax int64
	// hostPID is the agent's PID on the host (emulated limits only).
	hostPID int
}

// enforceUnitLimits returns the limits in force on the agent (main PID
// pid inside the container). systemd inside the container enforces
// MemoryMax=, CPUQuota= and TasksMax= where it has the controllers; on a
// host whose cgroup v1 controllers nspawn mounts read-only it cannot, and
// the test enforces the unit's values (as systemd computes them, drop-ins
// included) from the host on the agent's process, so that the kernel
// would OOM-kill or throttle it exactly as there. MemoryHigh= has no v1
// equivalent; the Go memory limit the agent derives from the cgroup is
// covered by internal/memlimit's tests.
func enforceUnitLimits(t *testing.T, h host, pid string) *unitLimits {
	t.Helper()
	dir := "/sys/fs/cgroup/system.slice/tokpulse-agent.service/"
	if _, ok := h.try("test -f " + dir + "memory.max"); ok {
		return &unitLimits{native: true, dir: dir, h: h}
	}
	memMax, err := strconv.ParseInt(h.show("MemoryMax"), 10, 64)
	if err != nil {
		t.Fatalf("the unit's MemoryMax= is %q, want bytes", h.show("MemoryMax"))
	}
	tasksMax := h.show("TasksMax")
	quota, err := time.ParseDuration(h.show("CPUQuotaPerSecUSec"))
	if err != nil {
		t.Fatalf("the unit's CPUQuota: %v", err)
	}
	hostPID := agentHostPID(t, h.c.PID(), pid)
	l := &unitLimits{v1: map[string]string{}, h: h, memMax: memMax, hostPID: hostPID}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("tp-burst-%d", os.Getpid())
	for _, line := range strings.Split(string(own), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			if ctl != "memory" && ctl != "cpu" && ctl != "pids" {
				continue
			}
			d := filepath.Join("/sys/fs/cgroup", ctl, parts[2], name)
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatalf("making the %s cgroup for the unit's limits: %v", ctl, err)
			}
			l.v1[ctl] = d
		}
	}
	for _, ctl := range []string{"memory", "cpu", "pids"} {
		if l.v1[ctl] == "" {
			t.Fatalf("no cgroup v1 %s controller to enforce the unit's limits with (/proc/self/cgroup: %s)", ctl, own)
		}
	}
	write := func(file, v string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(v), 0o644); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	write(filepath.Join(l.v1["memory"], "memory.limit_in_bytes"), strconv.FormatInt(memMax, 10))
	write(filepath.Join(l.v1["cpu"], "cpu.cfs_period_us"), "100000")
	write(filepath.Join(l.v1["cpu"], "cpu.cfs_quota_us"), strconv.FormatInt(quota.Microseconds()/10, 10))
	write(filepath.Join(l.v1["pids"], "pids.max"), tasksMax)
	for _, d := range l.v1 {
		write(filepath.Join(d, "cgroup.procs"), strconv.Itoa(hostPID))
	}
	t.Logf("the unit's limits (MemoryMax=%d, TasksMax=%s, CPUQuota=%s per second) enforced from the host on the agent (host PID %d): the container's cgroup v1 controllers are read-only", memMax, tasksMax, quota, hostPID)
	t.Cleanup(func() {
		for _, d := range l.v1 {
			procs, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			for _, p := range strings.Fields(string(procs)) {
				_ = os.WriteFile(filepath.Join(filepath.Dir(d), "cgroup.procs"), []byte(p), 0o644)
			}
			_ = os.Remove(d)
		}
	})
	return l
}

// agentHostPID returns the host's PID of the process that is nsPID inside
// the container whose init is initPID.
func agentHostPID(t *testing.T, initPID int, nsPID string) int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*/status")
	for _, f := range dirs {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			fields, ok := strings.CutPrefix(line, "NSpid:")
			if !ok {
				continue
			}
			ids := strings.Fields(fields)
			if len(ids) < 2 || ids[len(ids)-1] != nsPID {
				continue
			}
			hostPID, _ := strconv.Atoi(ids[0])
			if descendsFrom(hostPID, initPID) {
				return hostPID
			}
		}
	}
	t.Fatalf("no process of the container is its PID %s", nsPID)
	return 0
}

func descendsFrom(pid, ancestor int) bool {
	for pid > 1 {
		if pid == ancestor {
			return true
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		// The fields after the command, which may hold spaces: state ppid.
		rest := string(data[strings.LastIndexByte(string(data), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			return false
		}
		pid, _ = strconv.Atoi(f[1])
	}
	return false
}

// sample is one reading of what the agent uses: memory, tasks, throttling.
func (l *unitLimits) sample() string {
	if l.native {
		out, _ := l.h.try("cd " + l.dir + " && echo mem=$(cat memory.current) tasks=$(cat pids.current) $(grep -E '^nr_throttled ' cpu.stat)")
		return strings.TrimSpace(out)
	}
	read := func(ctl, file string) string {
		b, _ := os.ReadFile(filepath.Join(l.v1[ctl], file))
		return strings.TrimSpace(string(b))
	}
	throttled := ""
	for _, line := range strings.Split(read("cpu", "cpu.stat"), "\n") {
		if v, ok := strings.CutPrefix(line, "nr_throttled "); ok {
			throttled = v
		}
	}
	return fmt.Sprintf("mem=%s tasks=%s nr_throttled=%s", read("memory", "memory.usage_in_bytes"), read("pids", "pids.current"), throttled)
}

// check fails the test if the agent hit a limit it must stay under, and
// logs its peaks.
func (l *unitLimits) check(t *testing.T) {
	t.Helper()
	if l.native {
		events := l.h.sh("cat " + l.dir + "memory.events")
		for _, line := range strings.Split(events, "\n") {
			if f := strings.Fields(line); len(f) == 2 && (f[0] == "oom" || f[0] == "oom_kill") && f[1] != "0" {
				t.Errorf("memory.events: %s %s: the agent hit MemoryMax=", f[0], f[1])
			}
		}
		t.Logf("peaks: %s", strings.Join(strings.Fields(l.h.sh("cd "+l.dir+" && echo memory.peak=$(cat memory.peak) memory.max=$(cat memory.max) pids.peak=$(cat pids.peak) pids.max=$(cat pids.max)")), " "))
		return
	}
	read := func(ctl, file string) string {
		b, err := os.ReadFile(filepath.Join(l.v1[ctl], file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	for _, line := range strings.Split(read("memory", "memory.oom_control"), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok && v != "0" {
			t.Errorf("memory.oom_control: oom_kill %s: the agent hit MemoryMax=", v)
		}
	}
	if v := read("pids", "pids.events"); v != "max 0" {
		t.Errorf("pids.events: %q: the agent hit TasksMax=", v)
	}
	// The v1 cgroup counts what the agent allocated after it was moved
	// in; its peak RSS since exec is VmHWM.
	peak, _ := strconv.ParseInt(read("memory", "memory.max_usage_in_bytes"), 10, 64)
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", l.hostPID))
	hwm := ""
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			hwm = strings.TrimSpace(v)
		}
	}
	t.Logf("peaks: memory charged in the cgroup %d bytes (MemoryMax= %d), memory.failcnt %s; the agent's peak RSS (VmHWM) %s; cpu.stat %q",
		peak, l.memMax, read("memory", "memory.failcnt"), hwm, read("cpu", "cpu.stat"))
	if peak >= l.memMax {
		t.Errorf("peak memory %d reached MemoryMax= %d", peak, l.memMax)
	}
}

// countFileLines counts the lines of a burst file and those of them that
// are none of lines.
func countFileLines(path string, lines []string) (n, malformed int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	known := map[string]bool{}
	for _, l := range lines {
		known[l] = true
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		if !known[sc.Text()] {
			malformed++
		}
	}
	return n, malformed, sc.Err()
}

// logSourceMetrics returns the agent's metrics about its log sources, for
// a failure message.
func logSourceMetrics(body string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "tokpulse_log_") && !strings.HasPrefix(l, "tokpulse_log_matches") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
