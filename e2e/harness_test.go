package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil/fleet"

	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// timeScale compresses the shipped rule pack for the tests: every `for`,
// `keep_firing_for` and range window is divided by it, so one minute of
// the pack is one second here (for: 5m → 5s, rate(...[5m]) → [5s],
// keep_firing_for: 10m → 10s). Expressions, thresholds, labels and
// annotations stay exactly as shipped, and the file is generated at each
// run from packaging/rules/runbook.yml, so it cannot drift from it.
const timeScale = 60

// agentInterval is agent.interval in every scenario: the collection and
// rule evaluation period.
const agentInterval = time.Second

// event is a webhook event as docs/webhook.md describes it, decoded from
// a body the receiver has checked.
type event struct {
	ID          string            `json:"id"`
	Kind        string            `json:"kind"`
	Status      string            `json:"status"`
	IncidentID  string            `json:"incident_id"`
	AlertName   string            `json:"alertname"`
	Severity    string            `json:"severity"`
	Summary     string            `json:"summary"`
	Description string            `json:"description"`
	Runbook     string            `json:"runbook"`
	Value       *float64          `json:"value"`
	Labels      map[string]string `json:"labels"`
	StartedAt   time.Time         `json:"started_at"`
	EndedAt     time.Time         `json:"ended_at"`
	CreatedAt   time.Time         `json:"created_at"`
	Evidence    []struct {
		Source  string            `json:"source"`
		Kind    string            `json:"kind"`
		Title   string            `json:"title"`
		Labels  map[string]string `json:"labels"`
		Entries []struct {
			Time time.Time `json:"time"`
			Text string    `json:"text"`
		} `json:"entries"`
	} `json:"evidence"`
	Text string `json:"text"`
	// Escalation and Action: docs/webhook.md; Action is set on events of
	// kind action (and on initial and resolved events that name one).
	Escalation string `json:"escalation_step"`
	Action     *struct {
		Name       string   `json:"name"`
		Type       string   `json:"type"`
		Command    []string `json:"command"`
		Outcome    string   `json:"outcome"`
		Reason     string   `json:"reason"`
		Error      string   `json:"error"`
		ExitStatus *int     `json:"exit_status"`
		Output     string   `json:"output"`
		DryRun     bool     `json:"dry_run"`
	} `json:"action"`

	// ReceivedAt is when the receiver got the POST that carried it.
	ReceivedAt time.Time `json:"-"`
}

// evidenceText returns the evidence sections whose labels include want
// (all sections when want is empty), as "title\nentry\nentry..." text.
func (e event) evidenceText(want map[string]string) string {
	var b strings.Builder
	for _, s := range e.Evidence {
		match := true
		for k, v := range want {
			if s.Labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		b.WriteString(s.Title + "\n")
		for _, en := range s.Entries {
			b.WriteString("  " + en.Text + "\n")
		}
	}
	return b.String()
}

// scenario is one runbook incident: a webhook receiver and an
// Alertmanager, and the agent under test pointed at both.
type scenario struct {
	t        *testing.T
	name     string
	dir      string
	hook     *testutil.Receiver
	am       string
	agent    *testutil.Agent
	hostname string
	// secrets must never appear in anything the agent sends.
	secrets []string
	// rulesFor is each alert's `for` in the time-compressed pack.
	rulesFor map[string]time.Duration

	mu      sync.Mutex
	checked int     // requests of hook already checked and decoded
	events  []event // every event received, in order
}

// newScenario starts the receivers. The webhook's HMAC key is read by the
// agent from a secret_file, as in production.
func newScenario(t *testing.T, name string) *scenario {
	t.Helper()
	dir, err := os.MkdirTemp("", "tpe2e-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	// World-readable: services run as other users read files under it.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	key := "e2e-hmac-key-" + name
	s := &scenario{t: t, name: name, dir: dir, hostname: "e2e-" + name,
		hook: testutil.NewReceiver(t, key), am: testutil.StartAlertmanager(t)}
	s.secrets = append(s.secrets, key)
	s.write("webhook.key", key)
	s.rulesFor = writeFastRules(t, filepath.Join(dir, "rules", "runbook.yml"))
	t.Cleanup(s.checkNoSecrets)
	return s
}

// write writes a file under the scenario's directory and returns its path.
func (s *scenario) write(name, content string) string {
	s.t.Helper()
	p := filepath.Join(s.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	return p
}

// agentOptions are the parts of agent.yaml a scenario chooses.
type agentOptions struct {
	// Proc and Rootfs set agent.paths (default: the real ones).
	Proc, Rootfs string
	// Host is the host: section; default: every part off, so that this
	// busy shared machine's own CPU and disks fire nothing.
	Host string
	// Body is the rest: logs, probes, checks...
	Body string
}

// start writes agent.yaml and starts the agent on it.
func (s *scenario) start(o agentOptions) {
	s.t.Helper()
	addr := testutil.FreeAddr(s.t)
	paths := ""
	if o.Proc != "" {
		paths += "    proc: " + o.Proc + "\n"
	}
	if o.Rootfs != "" {
		paths += "    rootfs: " + o.Rootfs + "\n"
	}
	if paths != "" {
		paths = "  paths:\n" + paths
	}
	host := o.Host
	if host == "" {
		host = `host:
  cpu: false
  load: false
  memory: false
  boot_time: false
  filesystem: {enabled: false}
  disk: {enabled: false}
  network: {enabled: false}
`
	}
	cfg := fmt.Sprintf(`agent:
  hostname: %[1]s
  interval: %[2]s
  state_dir: %[3]s/state
  log: {level: debug}
%[4]sweb:
  listen: %[5]s
%[6]srule_files:
  - %[3]s/rules/*.yml
# P3/P4 wait 30s by default for companions to group with; a scenario has
# none, and the wait would only add to the suite's time.
severities:
  P3: {group_wait: 0s}
  P4: {group_wait: 0s}
notify:
  retry: {initial_interval: 100ms, max_interval: 1s}
  webhooks:
    - name: central
      url: %[7]s
      secret_file: %[3]s/webhook.key
  alertmanagers:
    - name: team
      urls: [%[8]s]
      resend_interval: 30s
%[9]s`, s.hostname, agentInterval, s.dir, paths, addr, host, s.hook.URL, s.am, o.Body)
	path := s.write("agent.yaml", cfg)
	s.agent = testutil.StartAgent(s.t, testutil.AgentOptions{
		Args: []string{"--config", path},
		// No system bus: units are not part of these scenarios.
		Env:  []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + s.dir + "/no_bus_socket"},
		Addr: addr,
	})
	s.agent.WaitReady(s.t, 1, 20*time.Second)
}

// poll checks and decodes the requests received since the last call.
func (s *scenario) poll() []event {
	s.mu.Lock()
	defer s.mu.Unlock()
	reqs := s.hook.Requests()
	for _, r := range reqs[s.checked:] {
		for _, raw := range s.hook.Check(s.t, r) {
			var e event
			if err := json.Unmarshal(raw, &e); err != nil {
				s.t.Fatalf("decoding an event: %v\n%s", err, raw)
			}
			e.ReceivedAt = r.At
			s.events = append(s.events, e)
		}
	}
	s.checked = len(reqs)
	return append([]event(nil), s.events...)
}

// matcher selects events.
type matcher struct {
	alert  string
	kind   string            // initial, update, resolved
	labels map[string]string // subset of the alert's labels
}

func (m matcher) String() string {
	return fmt.Sprintf("%s event of %s%v", m.kind, m.alert, m.labels)
}

func (m matcher) match(e event) bool {
	if e.AlertName != m.alert || (m.kind != "" && e.Kind != m.kind) {
		return false
	}
	for k, v := range m.labels {
		if e.Labels[k] != v {
			return false
		}
	}
	return true
}

// find returns the events received so far that m selects.
func (s *scenario) find(m matcher) []event {
	var out []event
	for _, e := range s.poll() {
		if m.match(e) {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for the first event m selects.
func (s *scenario) waitEvent(m matcher, timeout time.Duration) event {
	s.t.Helper()
	var got event
	testutil.Eventually(s.t, timeout, m.String()+" at the webhook", func() bool {
		if es := s.find(m); len(es) > 0 {
			got = es[0]
			return true
		}
		return false
	})
	return got
}

// waitFiring waits for the initial event m selects, checks its severity
// and that Alertmanager holds the same alert, and logs the latency from
// since (when the test made the condition true) to its receipt.
func (s *scenario) waitFiring(m matcher, severity string, since time.Time, timeout time.Duration) event {
	s.t.Helper()
	m.kind = "initial"
	e := s.waitEvent(m, timeout)
	if e.Severity != severity || e.Labels["severity"] != severity {
		s.t.Errorf("%s: severity %q (label %q), want %s", m, e.Severity, e.Labels["severity"], severity)
	}
	if e.Status != "firing" || e.Summary == "" || e.Description == "" || e.Runbook == "" || e.IncidentID == "" {
		s.t.Errorf("%s lacks what the on-call engineer needs: %+v", m, e)
	}
	if !strings.Contains(e.Text, "Severity: "+severity) {
		s.t.Errorf("%s: text does not carry the runbook's initial notification:\n%s", m, e.Text)
	}
	// A timed record, not a timed assertion: the numbers go to
	// docs/performance.md ("Runbook scenarios").
	lat := e.ReceivedAt.Sub(since)
	s.t.Logf("LATENCY scenario=%s alert=%s%s severity=%s latency=%s for=%s beyond_for=%s", s.name, m.alert, labelString(m.labels), severity,
		lat.Round(10*time.Millisecond), s.rulesFor[m.alert], (lat - s.rulesFor[m.alert]).Round(10*time.Millisecond))
	am := m
	am.labels = map[string]string{"severity": severity}
	for k, v := range m.labels {
		am.labels[k] = v
	}
	s.waitAlertmanager(am, true, 20*time.Second)
	return e
}

// waitResolved waits for the resolved event of the incident of fired, and
// for Alertmanager to drop the alert.
func (s *scenario) waitResolved(m matcher, fired event, timeout time.Duration) event {
	s.t.Helper()
	m.kind = "resolved"
	var got event
	testutil.Eventually(s.t, timeout, m.String()+" at the webhook", func() bool {
		for _, e := range s.find(m) {
			if e.IncidentID == fired.IncidentID {
				got = e
				return true
			}
		}
		return false
	})
	if got.Status != "resolved" || got.EndedAt.IsZero() || got.EndedAt.Before(fired.StartedAt) {
		s.t.Errorf("%s: %+v", m, got)
	}
	s.waitAlertmanager(m, false, 20*time.Second)
	return got
}

// waitAlertmanager waits until Alertmanager lists (present) or no longer
// lists the alert m selects, for this scenario's host.
func (s *scenario) waitAlertmanager(m matcher, present bool, timeout time.Duration) {
	s.t.Helper()
	what := "Alertmanager to list " + m.alert
	if !present {
		what = "Alertmanager to drop " + m.alert
	}
	testutil.Eventually(s.t, timeout, what, func() bool {
		found := false
		for _, a := range testutil.AlertmanagerAlerts(s.t, s.am) {
			ok := a.Labels["alertname"] == m.alert && a.Labels["host"] == s.hostname && a.Status.State == "active"
			for k, v := range m.labels {
				ok = ok && a.Labels[k] == v
			}
			found = found || ok
		}
		return found == present
	})
}

// checkNoSecrets fails the test if any secret appears in a body the agent
// sent to the webhook or to Alertmanager.
func (s *scenario) checkNoSecrets() {
	s.poll()
	var bodies []string
	for _, r := range s.hook.Requests() {
		bodies = append(bodies, string(r.Body))
	}
	if resp, err := http.Get(s.am + "/api/v2/alerts"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		bodies = append(bodies, string(b))
	}
	for _, sec := range s.secrets {
		for _, b := range bodies {
			if strings.Contains(b, sec) {
				s.t.Errorf("secret %q leaked into what the agent sent:\n%s", sec, b)
			}
		}
	}
}

// writeFastRules writes packaging/rules/runbook.yml to dst with its times
// divided by timeScale (see there), and returns each alert's new `for`:
// the fleet's scaling, so that the two suites compress rules alike.
func writeFastRules(t testing.TB, dst string) map[string]time.Duration {
	t.Helper()
	fors, err := fleet.WriteScaledRules(filepath.Join(testutil.RepoRoot(t), "packaging", "rules", "runbook.yml"), dst, timeScale)
	if err != nil {
		t.Fatal(err)
	}
	return fors
}

// labelString formats labels as {k="v",...} in key order.
func labelString(l map[string]string) string {
	if len(l) == 0 {
		return ""
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, l[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// shipped returns the entries of the list key (logs, probes, checks) of
// the shipped configuration, packaging/agent.yaml, as a YAML section for a
// scenario's agent.yaml. edit adapts each entry to the scenario (paths,
// addresses, intervals) and returns false to leave it out, so that the
// scenarios run the patterns, metrics, commands and names the package
// ships, not copies of them.
func shipped(t testing.TB, key string, edit func(entry map[string]any) bool) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "packaging", "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	list, _ := cfg[key].([]any)
	var out []any
	for _, it := range list {
		if m, ok := it.(map[string]any); ok && edit(m) {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		t.Fatalf("packaging/agent.yaml has no %s entry this scenario needs", key)
	}
	b, err := yaml.Marshal(map[string]any{key: out})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// named keeps the entries called name, passing them to edit.
func named(name string, edit func(entry map[string]any)) func(map[string]any) bool {
	return func(m map[string]any) bool {
		if m["name"] != name {
			return false
		}
		edit(m)
		return true
	}
}

// rebase points a shipped URL (http://127.0.0.1:3000/health) at base,
// keeping its path and query.
func rebase(t testing.TB, shippedURL, base string) string {
	t.Helper()
	u, err := url.Parse(shippedURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(base, "/") + u.RequestURI()
}

// agentAlert is an alert as the agent's /api/v1/alerts lists it.
type agentAlert struct {
	Name       string            `json:"alertname"`
	State      string            `json:"state"`
	Labels     map[string]string `json:"labels"`
	IncidentID string            `json:"incident_id"`
	ActiveAt   time.Time         `json:"active_at"`
	Held       bool              `json:"held"`
}

// agentAlerts returns the alerts the agent's rules hold, pending ones
// included (those never reach a receiver).
func (s *scenario) agentAlerts(m matcher) []agentAlert {
	s.t.Helper()
	_, body := s.agent.Get(s.t, "/api/v1/alerts")
	var resp struct {
		Data struct {
			Alerts []agentAlert `json:"alerts"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		s.t.Fatalf("/api/v1/alerts: %v\n%s", err, body)
	}
	var out []agentAlert
	for _, a := range resp.Data.Alerts {
		if m.match(event{AlertName: a.Name, Labels: a.Labels}) {
			out = append(out, a)
		}
	}
	return out
}
