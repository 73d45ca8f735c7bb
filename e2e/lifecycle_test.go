package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// The alert lifecycle across the agent's own lifecycle (issue "One alert
// lifecycle"), against the real binary, real signals and a signing webhook
// receiver: a restart neither resolves nor re-announces, a pending alert
// keeps its `for`, a recovery while down resolves exactly once, a reload is
// all or nothing, a new output learns what fires, and a typo in the file
// never leaves the host unmonitored.

// lcRules: a P1 at once and a P2 after 30s over the same failing check.
const lcRules = `groups:
  - name: lifecycle
    rules:
      - alert: DBDown
        expr: tokpulse_check_success{check="db"} == 0
        labels:
          severity: P1
        annotations:
          summary: "database check failing"
      - alert: DBDownLong
        expr: tokpulse_check_success{check="db"} == 0
        for: 30s
        labels:
          severity: P2
        annotations:
          summary: "database check failing for 30s"
`

// lcAgent is one agent under test with its files and receivers.
type lcAgent struct {
	t      *testing.T
	dir    string
	cfg    string
	listen string
	hooks  map[string]*lcHook
	agent  *testutil.Agent
}

// lcHook is a signing webhook receiver with its decoded events.
type lcHook struct {
	t  *testing.T
	rc *testutil.Receiver

	mu      sync.Mutex
	checked int
	events  []event
}

func (h *lcHook) all() []event {
	h.mu.Lock()
	defer h.mu.Unlock()
	reqs := h.rc.Requests()
	for _, r := range reqs[h.checked:] {
		for _, raw := range h.rc.Check(h.t, r) {
			var e event
			if err := json.Unmarshal(raw, &e); err != nil {
				h.t.Fatal(err)
			}
			e.ReceivedAt = r.At
			h.events = append(h.events, e)
		}
	}
	h.checked = len(reqs)
	return append([]event(nil), h.events...)
}

// find returns the events of kind for alert ("" for any).
func (h *lcHook) find(alert, kind string) []event {
	var out []event
	for _, e := range h.all() {
		if (alert == "" || e.AlertName == alert) && (kind == "" || e.Kind == kind) {
			out = append(out, e)
		}
	}
	return out
}

func (h *lcHook) wait(alert, kind string, timeout time.Duration) event {
	h.t.Helper()
	var got []event
	testutil.Eventually(h.t, timeout, kind+" "+alert, func() bool {
		got = h.find(alert, kind)
		return len(got) > 0
	})
	return got[0]
}

func newLCAgent(t *testing.T, hooks ...string) *lcAgent {
	t.Helper()
	dir := t.TempDir()
	a := &lcAgent{t: t, dir: dir, cfg: filepath.Join(dir, "agent.yaml"), listen: testutil.FreeAddr(t), hooks: map[string]*lcHook{}}
	for _, h := range hooks {
		a.hooks[h] = &lcHook{t: t, rc: testutil.NewReceiver(t, "k3y-"+h)}
		a.write("secret-"+h, "k3y-"+h+"\n")
	}
	a.write("rules.d/lifecycle.yml", lcRules)
	return a
}

func (a *lcAgent) write(name, content string) {
	a.t.Helper()
	p := filepath.Join(a.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		a.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		a.t.Fatal(err)
	}
}

// config writes agent.yaml with the named outputs (and extra at the top
// level).
func (a *lcAgent) config(outputs []string, extra string) {
	var hooks strings.Builder
	for _, h := range outputs {
		fmt.Fprintf(&hooks, "    - {name: %s, url: %q, secret_file: %s}\n", h, a.hooks[h].rc.URL, filepath.Join(a.dir, "secret-"+h))
	}
	a.write("agent.yaml", fmt.Sprintf(`agent:
  hostname: lc-host
  interval: 1s
  state_dir: %[1]s/state
web:
  listen: %[2]s
host:
  cpu: false
  load: false
  memory: false
  boot_time: false
  filesystem: {enabled: false}
  disk: {enabled: false}
  network: {enabled: false}
checks:
  # Fails until the file exists; a long interval, as the issue's check.
  - name: db
    command: [/bin/sh, -c, "test -e %[1]s/healthy"]
    interval: 20s
    timeout: 5s
rule_files: [rules.d/*.yml]
severities:
  P3: {group_wait: 0s}
  P4: {group_wait: 0s}
notify:
  heartbeat: 0s
  retry: {initial_interval: 100ms, max_interval: 1s}
  webhooks:
%[3]s%[4]s`, a.dir, a.listen, hooks.String(), extra))
}

func (a *lcAgent) start() {
	a.t.Helper()
	a.agent = testutil.StartAgent(a.t, testutil.AgentOptions{Args: []string{"--config", a.cfg}, Addr: a.listen,
		Env: []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + a.dir + "/no_bus_socket"}})
	a.agent.WaitReady(a.t, 1, 20*time.Second)
}

func (a *lcAgent) stop() {
	a.t.Helper()
	a.agent.Signal(a.t, 15)
	if code := a.agent.WaitExit(a.t, 10*time.Second); code != 0 {
		a.t.Fatalf("agent exited %d", code)
	}
}

// reload runs `tokpulse-agent reload` as systemd's ExecReload= would, and
// returns its exit code and output.
func (a *lcAgent) reload() (int, string) {
	a.t.Helper()
	cmd := exec.Command(testutil.AgentBinary(a.t), "reload", "--pid", strconv.Itoa(a.agent.Cmd.Process.Pid),
		"--state-dir", filepath.Join(a.dir, "state"), "--timeout", "20s")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		a.t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// alerts returns /api/v1/alerts by name.
func (a *lcAgent) alerts() map[string]agentAlert {
	a.t.Helper()
	_, body := a.agent.Get(a.t, "/api/v1/alerts")
	var resp struct {
		Data struct{ Alerts []agentAlert } `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		a.t.Fatalf("/api/v1/alerts: %v\n%s", err, body)
	}
	out := map[string]agentAlert{}
	for _, x := range resp.Data.Alerts {
		out[x.Name] = x
	}
	return out
}

// TestRestartKeepsIncidents: with a failing check whose interval (20s) is
// longer than agent.interval, a restart sends no resolution and no second
// initial; the incident keeps its id; a pending alert keeps the progress
// of its `for`; and an incident that truly recovered while the agent was
// down resolves exactly once.
func TestRestartKeepsIncidents(t *testing.T) {
	t.Parallel()
	a := newLCAgent(t, "central")
	hook := a.hooks["central"]
	a.config([]string{"central"}, "")
	a.start()
	first := hook.wait("DBDown", "initial", 30*time.Second)
	pendingSince := a.alerts()["DBDownLong"].ActiveAt
	if pendingSince.IsZero() {
		t.Fatalf("DBDownLong is not pending: %+v", a.alerts())
	}
	// Stop half way through DBDownLong's `for`.
	for time.Since(pendingSince) < 15*time.Second {
		time.Sleep(200 * time.Millisecond)
	}
	a.stop()
	stopped := time.Now()
	time.Sleep(time.Second)
	a.start()
	restarted := time.Now()
	// The old agent resolved both within 0.1 s of start (series absent
	// until the check's first run). Watch for 30s: the check runs within
	// 5s and again 20s later.
	long := hook.wait("DBDownLong", "initial", 30*time.Second)
	for time.Since(restarted) < 30*time.Second {
		time.Sleep(500 * time.Millisecond)
	}
	if r := hook.find("", "resolved"); len(r) != 0 {
		t.Fatalf("resolved after a restart while the check still fails: %+v", r)
	}
	if in := hook.find("DBDown", "initial"); len(in) != 1 || in[0].IncidentID != first.IncidentID {
		t.Fatalf("DBDown announced %d times after the restart (incident %s): %+v", len(in), first.IncidentID, in)
	}
	if cur := a.alerts()["DBDown"]; cur.IncidentID != first.IncidentID || cur.State != "firing" {
		t.Fatalf("after the restart DBDown is %+v, want firing as incident %s", cur, first.IncidentID)
	}
	// `for` kept its progress: it fired 30s of watched time after it
	// became pending, the time down not counted — not 30s after the
	// restart.
	down := restarted.Sub(stopped)
	if due := pendingSince.Add(30*time.Second + down); long.ReceivedAt.After(due.Add(8*time.Second)) || long.ReceivedAt.Before(due.Add(-2*time.Second)) {
		t.Fatalf("DBDownLong fired at %s, want about %s (pending since %s, %s down)", long.ReceivedAt.Format(time.TimeOnly), due.Format(time.TimeOnly), pendingSince.Format(time.TimeOnly), down.Round(time.Millisecond))
	}

	// Recovered while the agent was down: exactly one resolution each.
	a.stop()
	a.write("healthy", "")
	a.start()
	for _, name := range []string{"DBDown", "DBDownLong"} {
		r := hook.wait(name, "resolved", 30*time.Second)
		if in := hook.find(name, "initial"); r.IncidentID != in[0].IncidentID {
			t.Errorf("%s resolved as incident %s, announced as %s", name, r.IncidentID, in[0].IncidentID)
		}
	}
	time.Sleep(3 * time.Second)
	if r := hook.find("", "resolved"); len(r) != 2 {
		t.Fatalf("%d resolutions, want one per incident: %+v", len(r), r)
	}
}

// TestReloadAllOrNothing: a reload that adds an output and carries a bad
// rule file is refused as a whole (the new output receives nothing; the old
// one keeps receiving — here the agent's own alert about the refused
// reload), `tokpulse-agent reload` fails with the reason; a good reload
// adding the output catches it up on every firing incident.
func TestReloadAllOrNothing(t *testing.T) {
	t.Parallel()
	a := newLCAgent(t, "central", "second")
	central, second := a.hooks["central"], a.hooks["second"]
	a.config([]string{"central"}, "")
	a.start()
	db := central.wait("DBDown", "initial", 30*time.Second)

	a.config([]string{"central", "second"}, "")
	a.write("rules.d/broken.yml", strings.ReplaceAll(strings.ReplaceAll(lcRules, "P1", "P9"), "name: lifecycle", "name: broken"))
	code, out := a.reload()
	if code != 1 || !strings.Contains(out, "P9") || !strings.Contains(out, "refused") {
		t.Fatalf("reload of a config with severity P9: exit %d\n%s\nwant 1 and the reason", code, out)
	}
	refused := central.wait("TokPulseAgentConfigReloadRefused", "initial", 20*time.Second)
	if refused.Severity != "P3" {
		t.Errorf("the refused reload's own alert is %s, want P3", refused.Severity)
	}
	if _, body := a.agent.Get(t, "/metrics"); !strings.Contains(body, "tokpulse_agent_config_last_reload_successful 0") {
		t.Errorf("/metrics does not show the refused reload")
	}
	_, st := a.agent.Get(t, "/api/v1/status")
	if !strings.Contains(st, `"last_reload_successful": false`) || !strings.Contains(st, "P9") {
		t.Errorf("/api/v1/status does not show the refused reload:\n%s", st)
	}
	if n := a.agent.Notify.Count("STATUS="); n == 0 || !strings.Contains(strings.Join(a.agent.Notify.Messages(), "\n"), "last reload refused") {
		t.Errorf("STATUS= does not say the reload was refused: %v", a.agent.Notify.Messages())
	}
	time.Sleep(2 * time.Second)
	if n := len(second.rc.Requests()); n != 0 {
		t.Fatalf("the output of a refused configuration received %d requests", n)
	}

	if err := os.Remove(filepath.Join(a.dir, "rules.d/broken.yml")); err != nil {
		t.Fatal(err)
	}
	code, out = a.reload()
	if code != 0 {
		t.Fatalf("a good reload: exit %d\n%s", code, out)
	}
	caught := second.wait("DBDown", "initial", 20*time.Second)
	if caught.ID != db.ID || caught.IncidentID != db.IncidentID {
		t.Fatalf("the new output got %+v, want the initial event %s of incident %s", caught, db.ID, db.IncidentID)
	}
	// The refused-reload alert was firing at the reload, so the new
	// output learns of it too, and both hear it resolve.
	for _, h := range []*lcHook{central, second} {
		h.wait("TokPulseAgentConfigReloadRefused", "resolved", 20*time.Second)
	}
	if n := len(central.find("DBDown", "initial")); n != 1 {
		t.Fatalf("the old output got DBDown's initial %d times", n)
	}
}

// TestStartOnLastGoodConfig: a configuration that does not load at start
// leaves the agent running on the last good one, with its own P2 alert
// naming the problem; without a last good configuration, start fails.
func TestStartOnLastGoodConfig(t *testing.T) {
	t.Parallel()
	a := newLCAgent(t, "central")
	hook := a.hooks["central"]
	a.config([]string{"central"}, "")
	a.start()
	hook.wait("DBDown", "initial", 30*time.Second)
	a.stop()

	good, _ := os.ReadFile(a.cfg)
	a.write("agent.yaml", strings.Replace(string(good), "  interval: 1s\n", "  intervall: 1s\n", 1))
	a.start()
	p2 := hook.wait("TokPulseAgentConfigInvalid", "initial", 20*time.Second)
	if p2.Severity != "P2" || !strings.Contains(p2.Description, `unknown key "intervall"`) {
		t.Fatalf("the agent's own alert: %+v\nwant a P2 naming the problem", p2)
	}
	if _, body := a.agent.Get(t, "/metrics"); !strings.Contains(body, "tokpulse_agent_config_last_good_in_use 1") {
		t.Errorf("/metrics does not show the last good configuration in use")
	}
	if !strings.Contains(a.agent.Output(), "level=ERROR") || !strings.Contains(a.agent.Output(), "intervall") {
		t.Errorf("the problem is not logged at error level:\n%s", a.agent.Output())
	}
	// Still monitoring, on the last good configuration: the incident is
	// the same one and nothing was resolved.
	if in := hook.find("DBDown", "initial"); len(in) != 1 || len(hook.find("DBDown", "resolved")) != 0 {
		t.Fatalf("DBDown across a start on the last good configuration: %+v", hook.find("DBDown", ""))
	}
	// Fixed and reloaded: the agent's alert resolves.
	a.write("agent.yaml", string(good))
	if code, out := a.reload(); code != 0 {
		t.Fatalf("reload of the fixed file: %d %s", code, out)
	}
	hook.wait("TokPulseAgentConfigInvalid", "resolved", 20*time.Second)
	a.stop()

	// No last good configuration: start fails, saying why.
	fresh := newLCAgent(t, "central")
	fresh.config([]string{"central"}, "")
	cfg, _ := os.ReadFile(fresh.cfg)
	fresh.write("agent.yaml", strings.Replace(string(cfg), "  interval: 1s\n", "  intervall: 1s\n", 1))
	cmd := exec.Command(testutil.AgentBinary(t), "run", "--config", fresh.cfg)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "intervall") || !strings.Contains(string(out), "no usable last good configuration") {
		t.Fatalf("start without a last good configuration: %v\n%s", err, out)
	}

	// A last good copy stands in only for the file it is a copy of: a
	// broken file of another name sharing the state directory refuses to
	// start rather than run the first file's rules and outputs.
	other := filepath.Join(filepath.Dir(a.cfg), "other.yaml")
	broken, _ := os.ReadFile(a.cfg)
	if err := os.WriteFile(other, []byte(strings.Replace(string(broken), "  interval: 1s\n", "  intervall: 1s\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	// Bounded: an agent that wrongly starts runs until killed.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd = exec.CommandContext(ctx, testutil.AgentBinary(t), "run", "--config", other)
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is a copy of "+a.cfg) {
		t.Fatalf("start of another file on the first one's last good copy: %v\n%s", err, out)
	}
}
