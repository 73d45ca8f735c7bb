package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// healthApp is the application's /health in a test: it answers as mode
// says, and a token in its error body checks redaction.
type healthApp struct {
	srv  *httptest.Server
	mode atomic.Value // "ok", "503", "hang", "slow"
}

const appToken = "tok_live_9f8e7d6c5b4a"

func newHealthApp(t *testing.T) *healthApp {
	a := &healthApp{}
	a.mode.Store("ok")
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch a.mode.Load().(string) {
		case "503":
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"status":"error","database":"down","debug":"token=%s"}`, appToken)
		case "hang":
			// Stop answering: hold the request until the prober gives up.
			<-r.Context().Done()
		case "slow":
			select {
			case <-time.After(2500 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			fmt.Fprint(w, `{"status":"ok"}`)
		default:
			fmt.Fprint(w, `{"status":"ok"}`)
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// TestHealthCheckFailure: /health answers 503, then stops answering → the
// P1 TokPulseHealthCheckFailed (the shipped rule, for: 0s) within one probe
// interval + one agent interval; resolved when /health answers 200 again.
func TestHealthCheckFailure(t *testing.T) {
	t.Parallel()
	s := newScenario(t, "health")
	s.secrets = append(s.secrets, appToken)
	app := newHealthApp(t)
	const probeInterval = time.Second
	s.start(agentOptions{Body: shipped(t, "probes", named("health", func(p map[string]any) {
		p["url"] = rebase(t, p["url"].(string), app.srv.URL)
		p["interval"], p["timeout"] = probeInterval.String(), probeInterval.String()
	}))})
	// Healthy first: the probe has run and nothing fires.
	testutil.Eventually(t, 15*time.Second, "the health probe to succeed", func() bool {
		_, m := s.agent.Get(t, "/metrics")
		return strings.Contains(m, `tokpulse_probe_success{probe="health"} 1`)
	})

	m := matcher{alert: "TokPulseHealthCheckFailed", labels: map[string]string{"probe": "health"}}
	crossed := time.Now()
	app.mode.Store("503")
	e := s.waitFiring(m, "P1", crossed, 10*time.Second)
	// The budget (one probe interval + agent.interval) is measured, not
	// asserted: a timed assertion only measures how loaded the shared
	// machine is. docs/performance.md records the figures.
	lat, budget := e.ReceivedAt.Sub(crossed), probeInterval+agentInterval
	t.Logf("P1 reached the webhook %s after /health broke; budget %s", lat, budget)
	ev := e.evidenceText(map[string]string{"probe": "health"})
	for _, want := range []string{"Last failure of probe health", "/health", "reason=status", "status=503", `"database":"down"`, "token=[REDACTED]"} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}

	// It stops answering: still the same incident, now timing out.
	app.mode.Store("hang")
	testutil.Eventually(t, 10*time.Second, "the probe to time out", func() bool {
		_, m := s.agent.Get(t, "/metrics")
		return strings.Contains(m, `tokpulse_probe_failures_total{probe="health",reason="timeout"}`)
	})
	if n := len(s.find(matcher{alert: m.alert, kind: "initial"})); n != 1 {
		t.Errorf("%d initial events for one outage, want 1", n)
	}
	if got := s.find(matcher{alert: m.alert, kind: "resolved"}); len(got) != 0 {
		t.Errorf("resolved while /health still fails: %+v", got[0])
	}

	app.mode.Store("ok")
	r := s.waitResolved(m, e, 15*time.Second)
	if r.Severity != "P1" {
		t.Errorf("resolved event severity %q", r.Severity)
	}
}

// TestSlowHealth: /health answers after 2.5 s, within the probe's timeout
// → the P3 TokPulseSlowProbe (for: 5m in the pack, 5s here); resolved when
// it is fast again. The health check itself does not fail.
func TestSlowHealth(t *testing.T) {
	t.Parallel()
	s := newScenario(t, "slow")
	app := newHealthApp(t)
	s.start(agentOptions{Body: shipped(t, "probes", named("health", func(p map[string]any) {
		p["url"] = rebase(t, p["url"].(string), app.srv.URL)
		p["interval"], p["timeout"] = "4s", "4s"
	}))})
	testutil.Eventually(t, 15*time.Second, "the health probe to succeed", func() bool {
		_, m := s.agent.Get(t, "/metrics")
		return strings.Contains(m, `tokpulse_probe_success{probe="health"} 1`)
	})
	m := matcher{alert: "TokPulseSlowProbe", labels: map[string]string{"probe": "health"}}
	crossed := time.Now()
	app.mode.Store("slow")
	e := s.waitFiring(m, "P3", crossed, 30*time.Second)
	if e.Value == nil || *e.Value < 2.5 || *e.Value > 4 {
		t.Errorf("value %v, want the probe's duration, about 2.5 s", e.Value)
	}
	if !strings.Contains(e.Summary, "health answers in 2.") {
		t.Errorf("summary %q", e.Summary)
	}
	app.mode.Store("ok")
	s.waitResolved(m, e, 30*time.Second)
	if got := s.find(matcher{alert: "TokPulseHealthCheckFailed"}); len(got) != 0 {
		t.Errorf("a slow but successful /health fired %+v", got)
	}
}

// TestDatabaseUnavailable: a real PostgreSQL on loopback is stopped while
// the app log fills with "database connection refused" lines → the P1
// TokPulseDatabaseUnavailable from the psql check (for: 1m in the pack, 1s
// here) with psql's error as evidence, and the log-based
// TokPulseDatabaseConnectionErrors with the lines; both resolve when the
// server is back.
func TestDatabaseUnavailable(t *testing.T) {
	t.Parallel()
	s := newScenario(t, "database")
	pg := testutil.StartPostgres(t)
	// A password in DATABASE_URL, as in production; trust authentication
	// ignores it, and it must never reach a receiver.
	const dbPassword = "Pg-s3cret-e2e"
	s.secrets = append(s.secrets, dbPassword)
	urlFile := s.write("database_url", fmt.Sprintf("postgresql://postgres:%s@127.0.0.1:%d/postgres?connect_timeout=3", dbPassword, pg.Port))
	// The application logs its failed connections while the database is
	// down, with the credentials it should not print.
	var down atomic.Bool
	app := writeLog(t, s.dir+"/app.log", 10, func(i int64) string {
		ts := time.Now().UTC().Format(time.RFC3339Nano)
		if down.Load() {
			return fmt.Sprintf("%s ERROR database connection refused (connect ECONNREFUSED 127.0.0.1:%d) user=tokpulse password=%s", ts, pg.Port, dbPassword)
		}
		return ts + " INFO request served path=/api/videos"
	})
	// The shipped check and TCP probe; DATABASE_URL comes from a file here
	// rather than from /etc/default/tokpulse-agent.
	s.start(agentOptions{Body: logsConfig(t, s.dir) +
		shipped(t, "checks", named("postgres", func(c map[string]any) {
			c["env_files"] = map[string]any{"DATABASE_URL": urlFile}
			// Each run starts psql under a reaper (a second process): 2 s
			// leaves room on a loaded machine.
			c["interval"], c["timeout"] = "2s", "2s"
		})) +
		shipped(t, "probes", named("postgres_tcp", func(p map[string]any) {
			p["url"] = fmt.Sprintf("tcp://127.0.0.1:%d", pg.Port)
			p["interval"], p["timeout"] = "1s", "1s"
		}))})
	testutil.Eventually(t, 20*time.Second, "the postgres check to succeed", func() bool {
		_, m := s.agent.Get(t, "/metrics")
		return strings.Contains(m, `tokpulse_check_success{check="postgres"} 1`)
	})

	m := matcher{alert: "TokPulseDatabaseUnavailable", labels: map[string]string{"check": "postgres"}}
	logged := matcher{alert: "TokPulseDatabaseConnectionErrors", labels: map[string]string{"source": "app", "pattern": "db_connection"}}
	crossed := time.Now()
	pg.Stop()
	down.Store(true)
	e := s.waitFiring(m, "P1", crossed, 20*time.Second)
	tcp := matcher{alert: "TokPulseDatabaseUnavailable", labels: map[string]string{"probe": "postgres_tcp"}}
	te := s.waitFiring(tcp, "P1", crossed, 20*time.Second)
	if ev := te.evidenceText(map[string]string{"probe": "postgres_tcp"}); !strings.Contains(ev, "reason=refused") {
		t.Errorf("TCP probe evidence lacks the refused connection:\n%s", ev)
	}
	// The log-based rule, at the pack's severity: connection errors in the
	// log are P2 (a pool exhausted is not a database down); the P1 is the
	// check's.
	le := s.waitFiring(logged, "P2", crossed, 20*time.Second)
	lev := le.evidenceText(map[string]string{"source": "app", "pattern": "db_connection"})
	if !strings.Contains(lev, "ERROR database connection refused (connect ECONNREFUSED 127.0.0.1:") || !strings.Contains(lev, "password=[REDACTED]") {
		t.Errorf("log evidence lacks the redacted connection errors:\n%s", lev)
	}
	ev := e.evidenceText(map[string]string{"check": "postgres"})
	for _, want := range []string{"Last failure of check postgres (psql): exit", "reason=exit", fmt.Sprint(pg.Port), "refused"} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}
	if !strings.Contains(e.Description, `psql "$DATABASE_URL" -c "SELECT 1;"`) {
		t.Errorf("description %q", e.Description)
	}

	pg.Start()
	down.Store(false)
	s.waitResolved(m, e, 20*time.Second)
	s.waitResolved(tcp, te, 20*time.Second)
	// keep_firing_for (10m in the pack, 10s here) holds it past the last line.
	s.waitResolved(logged, le, 40*time.Second)
	app.Stop()
}

// TestWebhookFailures: a real Redis whose webhook_queue list grows past
// 100 → the P2 TokPulseWebhookQueueBacklog (for: 10m in the pack, 10s
// here), and "webhook failed" lines in the app log → the P2
// TokPulseWebhookFailures with the lines, redacted; both resolve when the
// test drains the list and the failures stop.
func TestWebhookFailures(t *testing.T) {
	t.Parallel()
	s := newScenario(t, "webhooks")
	rd := testutil.StartRedis(t)
	const signingSecret = "whsec_e2e_0a1b2c3d4e"
	s.secrets = append(s.secrets, signingSecret)
	var failing atomic.Bool
	app := writeLog(t, s.dir+"/app.log", 10, func(i int64) string {
		ts := time.Now().UTC().Format(time.RFC3339Nano)
		if failing.Load() && i%2 == 0 {
			return ts + " ERROR webhook failed: POST https://hooks.example.com/tiktok status=502 attempt=3 secret=" + signingSecret
		}
		return ts + " INFO request served path=/api/videos"
	})
	s.start(agentOptions{Body: logsConfig(t, s.dir) + shipped(t, "checks", named("webhook_queue", func(c map[string]any) {
		// The shipped command, told the test server's port.
		argv := c["command"].([]any)
		c["command"] = append([]any{argv[0], "-p", fmt.Sprint(rd.Port)}, argv[1:]...)
		c["interval"], c["timeout"] = "2s", "2s"
	}))})
	testutil.Eventually(t, 20*time.Second, "the webhook_queue check to run", func() bool {
		_, m := s.agent.Get(t, "/metrics")
		return strings.Contains(m, `tokpulse_check_value{check="webhook_queue"} 0`)
	})
	// 100 is the threshold, not above it: nothing fires yet.
	items := make([]string, 150)
	for i := range items {
		items[i] = fmt.Sprintf(`{"id":%d,"url":"https://hooks.example.com/x"}`, i)
	}
	rd.CLI(append([]string{"RPUSH", "webhook_queue"}, items...)...)
	failing.Store(true)
	crossed := time.Now()
	m := matcher{alert: "TokPulseWebhookQueueBacklog", labels: map[string]string{"check": "webhook_queue"}}
	logged := matcher{alert: "TokPulseWebhookFailures", labels: map[string]string{"source": "app", "pattern": "webhook_failed"}}
	le := s.waitFiring(logged, "P2", crossed, 20*time.Second)
	lev := le.evidenceText(map[string]string{"source": "app", "pattern": "webhook_failed"})
	if !strings.Contains(lev, "ERROR webhook failed: POST https://hooks.example.com/tiktok status=502") || !strings.Contains(lev, "secret=[REDACTED]") {
		t.Errorf("log evidence lacks the redacted webhook failures:\n%s", lev)
	}
	e := s.waitFiring(m, "P2", crossed, 40*time.Second)
	if e.Value == nil || *e.Value != 150 || !strings.Contains(e.Summary, "150 webhooks") {
		t.Errorf("value %v, summary %q; want 150", e.Value, e.Summary)
	}
	rd.CLI("DEL", "webhook_queue")
	failing.Store(false)
	s.waitResolved(m, e, 20*time.Second)
	s.waitResolved(logged, le, 40*time.Second)
	app.Stop()
}

// TestHighMemoryAndDisk: a fixture /proc whose meminfo says 85 % in use →
// the P2 TokPulseHighMemoryUsage; and a small real filesystem (a tmpfs the
// test mounts, declared ext4 in the fixture's mountinfo) filled to 15 %
// free → the P3 TokPulseLowDiskSpace (for: 5m and 10m in the pack, 5s and
// 10s here). Both resolve when the test frees memory and space.
func TestHighMemoryAndDisk(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	s := newScenario(t, "resources")
	proc := filepath.Join(s.dir, "proc")
	copyDir(t, "testdata/proc", proc)
	setMemoryUsed(t, proc, 50)
	root := filepath.Join(s.dir, "root")
	data := filepath.Join(root, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	const fsSize = 4 << 20
	if err := syscall.Mount("tmpfs", data, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", fsSize)); err != nil {
		t.Fatalf("mounting a %d-byte tmpfs on %s: %v", fsSize, data, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(data, syscall.MNT_DETACH) })

	s.start(agentOptions{Proc: proc, Rootfs: root, Host: `host:
  cpu: false
  load: false
  boot_time: false
  memory: true
  filesystem: {enabled: true}
  disk: {enabled: false}
  network: {enabled: false}
`})
	testutil.Eventually(t, 15*time.Second, "the fixture's filesystem in /metrics", func() bool {
		_, m := s.agent.Get(t, "/metrics")
		return strings.Contains(m, `node_filesystem_size_bytes{device="/dev/vdb1",fstype="ext4",mountpoint="/data"}`)
	})

	mem := matcher{alert: "TokPulseHighMemoryUsage"}
	disk := matcher{alert: "TokPulseLowDiskSpace", labels: map[string]string{"mountpoint": "/data", "device": "/dev/vdb1"}}
	crossed := time.Now()
	setMemoryUsed(t, proc, 85)
	fill := filepath.Join(data, "big.log")
	if err := os.WriteFile(fill, make([]byte, fsSize*85/100), 0o644); err != nil {
		t.Fatal(err)
	}
	me := s.waitFiring(mem, "P2", crossed, 30*time.Second)
	if me.Value == nil || *me.Value < 84.9 || *me.Value > 85.1 || me.Summary != "Memory usage is 85.0%" {
		t.Errorf("memory alert value %v, summary %q; want 85", me.Value, me.Summary)
	}
	if ev := me.evidenceText(nil); !strings.Contains(ev, "Memory and swap (free -h)") || !strings.Contains(ev, "memory used: 85.0%") {
		t.Errorf("memory evidence lacks free -h:\n%s", ev)
	}
	de := s.waitFiring(disk, "P3", crossed, 40*time.Second)
	if de.Value == nil || *de.Value < 10 || *de.Value >= 20 || !strings.Contains(de.Summary, "free on /data") {
		t.Errorf("disk alert value %v, summary %q; want about 15 %% free on /data", de.Value, de.Summary)
	}
	if ev := de.evidenceText(nil); !strings.Contains(ev, "Filesystems (df -h)") || !strings.Contains(ev, "/data") {
		t.Errorf("disk evidence lacks df -h of /data:\n%s", ev)
	}

	setMemoryUsed(t, proc, 50)
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	s.waitResolved(mem, me, 20*time.Second)
	s.waitResolved(disk, de, 20*time.Second)
}

// copyDir copies the fixture tree src to dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// setMemoryUsed rewrites the fixture's MemAvailable (atomically, as the
// kernel's file never reads half-written) so that usedPercent of MemTotal
// is in use.
func setMemoryUsed(t *testing.T, proc string, usedPercent int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(proc, "meminfo"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "MemAvailable:") {
			lines[i] = fmt.Sprintf("MemAvailable:    %d kB", 8000000*(100-usedPercent)/100)
		}
	}
	tmp := filepath.Join(proc, "meminfo.tmp")
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(proc, "meminfo")); err != nil {
		t.Fatal(err)
	}
}
