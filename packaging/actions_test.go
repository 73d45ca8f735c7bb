package packaging

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/actions"
	"github.com/tokpulse/tokpulse-agent/agent"
	"github.com/tokpulse/tokpulse-agent/internal/testutil"
	"github.com/tokpulse/tokpulse-agent/internal/testutil/nspawn"
	"github.com/tokpulse/tokpulse-agent/rules"
)

// Restart actions (issue 16) for real: the .deb installed on a booted
// Debian with polkitd, its hardened unit and its polkit rule; a stand-in
// tokpulse.service (testdata/standin) whose /health answers 503 until it
// is restarted; the agent restarting it through systemd's D-Bus API; and
// a signing webhook receiver, run by the test inside the container's
// network, that validates every body against the schema.

// actionsConfig is agent.yaml in the container. The health probe watches
// the stand-in; "ready" watches a port nobody serves, so that its alert
// fires at once and its action asks for a restart the policy does not
// allow (other.service).
const actionsConfig = `agent:
  interval: 1s
web:
  listen: 127.0.0.1:9847
host: {cpu: false, load: false, memory: false, boot_time: false, filesystem: {enabled: false}, disk: {enabled: false}, network: {enabled: false}}
probes:
  - {name: health, url: http://127.0.0.1:3000/health, interval: 1s, timeout: 1s}
  - {name: ready, url: http://127.0.0.1:3001/ready, interval: 1s, timeout: 1s}
rule_files: [/usr/share/tokpulse-agent/rules/*.yml]
notify:
  heartbeat: 0s
  retry: {initial_interval: 100ms, max_interval: 1s}
  webhooks:
    - {name: test, url: %q, secret_file: /etc/tokpulse-agent/webhook-secret}
actions:
  - name: restart-app
    match: {alertname: TokPulseHealthCheckFailed, probe: health}
    restart_unit: tokpulse.service
    max_runs: 1
    per: 1h
    verify_within: 30s
%s`

// outsidePolicy is the action polkit must refuse.
const outsidePolicy = `  - name: restart-other
    match: {alertname: TokPulseHealthCheckFailed, probe: ready}
    restart_unit: other.service
`

// standinUnit is the stand-in TokPulse.
const standinUnit = `[Unit]
Description=TokPulse stand-in (testdata/standin)

[Service]
ExecStart=/usr/local/bin/tokpulse-standin
`

// hookEvent is what the test reads of an event.
type hookEvent struct {
	Kind       string            `json:"kind"`
	AlertName  string            `json:"alertname"`
	IncidentID string            `json:"incident_id"`
	Labels     map[string]string `json:"labels"`
	Escalation string            `json:"escalation_step"`
	Text       string            `json:"text"`
	Action     *struct {
		Name    string `json:"name"`
		Unit    string `json:"unit"`
		Outcome string `json:"outcome"`
		Error   string `json:"error"`
		Reason  string `json:"reason"`
	} `json:"action"`
}

// actionHost is a booted container with the package installed, the
// stand-in running and failing, and a receiver in its network.
type actionHost struct {
	host
	rc *testutil.Receiver
}

// newActionHost boots a container of tree (its extra packages), installs
// the .deb and the stand-in, and starts a receiver inside its network.
func newActionHost(t *testing.T, include []string) *actionHost {
	t.Helper()
	b := buildPackages(t, "1.0.0")
	standin := filepath.Join(t.TempDir(), "tokpulse-standin")
	cmd := exec.Command("go", "build", "-o", standin, "./testdata/standin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the stand-in: %v\n%s", err, out)
	}
	c := nspawn.Start(t, nspawn.Options{Include: include})
	h := &actionHost{host: host{t: t, c: c}}
	ctx := context.Background()
	if err := c.CopyIn(ctx, b.deb, "/root/tokpulse-agent.deb", 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.CopyIn(ctx, standin, "/usr/local/bin/tokpulse-standin", 0o755); err != nil {
		t.Fatal(err)
	}
	h.sh("dpkg -i /root/tokpulse-agent.deb")

	ln, err := c.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.rc = testutil.NewReceiverHandler(t, "k3y-actions")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(h.rc.Serve))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	h.rc.URL = srv.URL

	// The stand-in fails from its first answer; other.service is a unit
	// outside the policy.
	h.writeFile("/etc/systemd/system/tokpulse.service", standinUnit, 0o644)
	h.writeFile("/etc/systemd/system/other.service", "[Service]\nExecStart=/bin/sleep infinity\n", 0o644)
	h.sh(`systemctl daemon-reload
touch /run/tokpulse-fail
systemctl start tokpulse.service other.service`)
	return h
}

// configure replaces the shipped configuration with actionsConfig (plus
// extra actions) and restarts the agent on an empty state directory, so
// that only this test's incidents exist.
func (h *actionHost) configure(extra string) {
	h.t.Helper()
	h.sh("systemctl stop tokpulse-agent && rm -rf /var/lib/tokpulse-agent/*")
	h.writeFile("/etc/tokpulse-agent/webhook-secret", "k3y-actions\n", 0o640)
	h.writeFile("/etc/tokpulse-agent/agent.yaml", fmt.Sprintf(actionsConfig, h.rc.URL, extra), 0o644)
	h.sh(`chgrp tokpulse-agent /etc/tokpulse-agent/webhook-secret
systemctl start tokpulse-agent`)
}

// events returns the events received for the probe's alert, in order.
func (h *actionHost) events(probe string) []hookEvent {
	var out []hookEvent
	for _, r := range h.rc.Requests() {
		for _, raw := range h.rc.Check(h.t, r) {
			var e hookEvent
			if err := json.Unmarshal(raw, &e); err != nil {
				h.t.Fatal(err)
			}
			if e.Labels["probe"] == probe {
				out = append(out, e)
			}
		}
	}
	return out
}

// waitKinds waits until the probe's alert has exactly these events.
func (h *actionHost) waitKinds(probe, want string, timeout time.Duration) []hookEvent {
	h.t.Helper()
	var got []hookEvent
	h.eventually(probe+": "+want, timeout, func() (bool, string) {
		got = h.events(probe)
		var ks []string
		for _, e := range got {
			ks = append(ks, e.Kind)
		}
		return strings.Join(ks, " ") == want, strings.Join(ks, " ")
	})
	return got
}

func (h *actionHost) unitPID(unit string) string {
	h.t.Helper()
	return strings.TrimSpace(h.sh("systemctl show -P MainPID " + unit))
}

// TestRestartActionInContainer: the packaged agent, as its own user under
// the hardened unit, restarts the failing tokpulse.service through D-Bus,
// allowed by the packaged polkit rule; the receiver sees the page saying
// a restart is under way, the action's success, and the resolution, in
// that order. A second failure within the hour is refused (max_runs 1)
// and escalates, with no restart. A unit outside the policy is refused by
// polkit, and the event says so. check, as root, fails that action.
func TestRestartActionInContainer(t *testing.T) {
	h := newActionHost(t, []string{"procps", "polkitd", "libpam-systemd"})
	pidOther := h.unitPID("other.service")
	h.configure(outsidePolicy)
	before := h.unitPID("tokpulse.service")

	t.Run("restart", func(t *testing.T) {
		evs := h.waitKinds("health", "initial action resolved", 60*time.Second)
		if a := evs[0].Action; a == nil || a.Outcome != "running" || !strings.Contains(evs[0].Text, "Automated response: restart of tokpulse.service under way") {
			t.Errorf("the initial page does not say a restart is under way: %+v\n%s", a, evs[0].Text)
		}
		if a := evs[1].Action; a.Outcome != "succeeded" || a.Unit != "tokpulse.service" || a.Name != "restart-app" {
			t.Errorf("action %+v, want restart-app's restart of tokpulse.service, succeeded", a)
		}
		if !strings.Contains(evs[2].Text, "resolved after automated restart of tokpulse.service (") {
			t.Errorf("resolution text:\n%s", evs[2].Text)
		}
		if after := h.unitPID("tokpulse.service"); after == before || after == "0" {
			t.Errorf("tokpulse.service MainPID %s → %s: not restarted", before, after)
		}
		if got := strings.TrimSpace(h.sh("cat /run/tokpulse-starts")); got != "2" {
			t.Errorf("the stand-in started %s times, want 2", got)
		}
		if j := h.sh("journalctl --no-pager -o cat -u tokpulse-agent"); !strings.Contains(j, "Starting an automated action") {
			t.Errorf("the agent's journal does not show the action:\n%s", j)
		}
	})

	t.Run("outside the policy", func(t *testing.T) {
		evs := h.waitKinds("ready", "initial action update", 60*time.Second)
		a := evs[1].Action
		if a.Outcome != "failed" || !strings.Contains(a.Error, "polkit refused to let the agent's user restart other.service") ||
			!strings.Contains(a.Error, "Interactive authentication required") {
			t.Errorf("action %+v, want failed, saying polkit refused", a)
		}
		if evs[2].Escalation != "engineering-manager" {
			t.Errorf("escalation %q after the refusal", evs[2].Escalation)
		}
		if got := h.unitPID("other.service"); got != pidOther {
			t.Errorf("other.service MainPID %s → %s: restarted despite the policy", pidOther, got)
		}
		// check, as root, reads the whole policy and refuses the action.
		out, ok := h.try("tokpulse-agent check 2>&1")
		if ok || !strings.Contains(out, "other.service is not among the units the polkit policy lets the agent restart") {
			t.Errorf("check of a restart outside the policy:\n%s", out)
		}
	})

	t.Run("rate limited", func(t *testing.T) {
		pid := h.unitPID("tokpulse.service")
		h.sh("touch /run/tokpulse-fail")
		evs := h.waitKinds("health", "initial action resolved initial action update", 60*time.Second)
		if a := evs[4].Action; a.Outcome != "rate_limited" || !strings.Contains(a.Reason, "max_runs 1 per 1h") {
			t.Errorf("second failure's action %+v, want rate_limited", a)
		}
		if evs[5].Escalation != "engineering-manager" || evs[3].IncidentID == evs[0].IncidentID {
			t.Errorf("escalation %q, incidents %s and %s: want a new incident, escalated", evs[5].Escalation, evs[0].IncidentID, evs[3].IncidentID)
		}
		// A few evaluations later, still nothing restarted it.
		time.Sleep(3 * time.Second)
		if got := h.unitPID("tokpulse.service"); got != pid {
			t.Errorf("tokpulse.service MainPID %s → %s: restarted despite the budget", pid, got)
		}
		m, err := h.metrics()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`tokpulse_action_runs_total{action="restart-app",outcome="succeeded"} 1`,
			`tokpulse_action_runs_total{action="restart-app",outcome="rate_limited"} 1`,
			`tokpulse_action_runs_total{action="restart-other",outcome="failed"} 1`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if out := h.sh("tokpulse-agent status --config /etc/tokpulse-agent/agent.yaml"); !strings.Contains(out, "none left until") {
			t.Errorf("status does not show the spent budget:\n%s", out)
		}
	})
}

// TestRestartActionWithoutPolkit: on a minimal system without polkitd,
// nothing lets the agent's user restart a unit; the action fails with an
// event that says polkitd is missing.
func TestRestartActionWithoutPolkit(t *testing.T) {
	h := newActionHost(t, []string{"procps"})
	if _, ok := h.try("test -e /usr/lib/polkit-1/polkitd"); ok {
		t.Fatal("this tree has polkitd")
	}
	before := h.unitPID("tokpulse.service")
	h.configure("")
	evs := h.waitKinds("health", "initial action update", 60*time.Second)
	if a := evs[1].Action; a.Outcome != "failed" || !strings.Contains(a.Error, "polkitd is not installed") {
		t.Errorf("action %+v, want failed, saying polkitd is not installed", a)
	}
	if got := h.unitPID("tokpulse.service"); got != before {
		t.Errorf("tokpulse.service restarted without polkit: MainPID %s → %s", before, got)
	}
}

// TestShippedActions: the actions commented out at the end of the shipped
// agent.yaml, uncommented, are a valid configuration whose restarts the
// packaged polkit rule allows and whose alerts the rule pack defines; and
// docs/actions.md shows them as shipped.
func TestShippedActions(t *testing.T) {
	data, err := os.ReadFile("agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, commented, ok := strings.Cut(string(data), "\n#actions:\n")
	if !ok {
		t.Fatal("the shipped agent.yaml has no commented actions: section")
	}
	var block strings.Builder
	block.WriteString("actions:\n")
	for _, l := range strings.Split(strings.TrimRight(commented, "\n"), "\n") {
		if !strings.HasPrefix(l, "#") {
			t.Fatalf("line %q after #actions: is not commented", l)
		}
		block.WriteString(strings.TrimPrefix(l, "#") + "\n")
	}
	cfg, err := agent.Parse("agent.yaml", []byte(block.String()))
	if err != nil {
		t.Fatalf("the shipped actions, uncommented:\n%v", err)
	}
	rs, err := rules.Load([]string{"rules/runbook.yml"}, rules.LoadOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range rs.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
		}
	}
	problems, warnings, notes := actions.Check(cfg.Actions, names, actions.ReadPolicy([]string{"polkit"}), []byte(block.String()))
	if len(problems)+len(warnings)+len(notes) > 0 || len(cfg.Actions) != 4 {
		t.Errorf("%d actions; problems %v, warnings %v, notes %v", len(cfg.Actions), problems, warnings, notes)
	}
	doc, err := os.ReadFile("../docs/actions.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```yaml\nrule_files: [/usr/share/tokpulse-agent/rules/*.yml]\n"+block.String()+"```") {
		t.Errorf("docs/actions.md does not show the shipped actions as they are:\n%s", block.String())
	}
}

// TestPolkitRuleShipped: both packages install the polkit rule where
// Debian's and RHEL's polkit read it, world-readable and owned by root,
// and recommend polkit's daemon, which restart actions need.
func TestPolkitRuleShipped(t *testing.T) {
	b := buildPackages(t, "")
	const rule = "/usr/share/polkit-1/rules.d/" + actions.PolicyFile
	out := run(t, "", nil, "sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -tv`, "sh", b.deb)
	found := false
	for _, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, "."+rule) {
			found = strings.HasPrefix(l, "-rw-r--r-- root/root ")
			if !found {
				t.Errorf(".deb ships %s as %q, want -rw-r--r-- root/root", rule, l)
			}
		}
	}
	if !found && !t.Failed() {
		t.Errorf(".deb lacks %s", rule)
	}
	if rec := run(t, "", nil, "dpkg-deb", "--field", b.deb, "Recommends"); !strings.Contains(rec, "polkitd") {
		t.Errorf(".deb Recommends: %q, want polkitd", rec)
	}
	if files := run(t, "", nil, "rpm", "-qp", "--qf", `[%{FILEMODES:perms} %{FILEUSERNAME} %{FILENAMES}\n]`, b.rpm); !strings.Contains(files, "-rw-r--r-- root "+rule+"\n") {
		t.Errorf(".rpm lacks %s (0644, root):\n%s", rule, files)
	}
	if rec := run(t, "", nil, "rpm", "-qp", "--recommends", b.rpm); !strings.Contains(rec, "polkit") {
		t.Errorf(".rpm recommends %q, want polkit", rec)
	}
}
