package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
	"github.com/tokpulse/tokpulse-agent/internal/testutil/fleet"
)

// The fleet test runs the shipped central pieces together at small scale:
// five agents, Debian's Prometheus with the central rules, a three-replica
// Alertmanager cluster with packaging/alertmanager/tokpulse-routing.yml,
// and stand-ins for Slack, PagerDuty, an SMTP server and the central
// webhook (internal/testutil/fleet). Times are compressed as in the
// runbook scenarios: the central rules and the agents' rule pack by 60
// (for: 2m -> 2s), the routing file's timings by 12 (P1 group_interval 1m
// -> 5s), Alertmanager's peer timeout from 15s to 1.5s and its gossip
// interval from 200ms to 50ms. They keep the proportions docs/fleet.md
// explains: a replica's notification-log entries must reach its peers
// (a few per gossip round) within the peer timeout, or the next replica
// notifies again; and (replicas - 1) x peer timeout must stay below every
// group_interval, or the last replica re-announces an alert the first has
// just resolved. bench/fleet.sh runs the same fleet at 50 agents with the
// shipped timings (docs/fleet.md).
const (
	fleetAgents      = 5
	fleetRuleScale   = 60
	fleetRouteScale  = 12
	fleetPeerTimeout = 1500 * time.Millisecond
	fleetGossip      = 50 * time.Millisecond
)

// startFleet starts a fleet for the test and stops it at the end; when
// the test fails it logs the tail of every server's log.
func startFleet(t *testing.T, ctx context.Context) *fleet.Fleet {
	t.Helper()
	for _, cmd := range []string{"prometheus", "prometheus-alertmanager", "amtool", "promtool", "aiosmtpd"} {
		testutil.Require(t, cmd)
	}
	dir, err := os.MkdirTemp("", "tpfleet-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	logs := &testutil.SyncBuffer{}
	f, err := fleet.Start(ctx, fleet.Options{
		Agents: fleetAgents, Bin: testutil.AgentBinary(t), Repo: testutil.RepoRoot(t), Dir: dir,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		// Probes every 3s with a 3s timeout and scrapes every 2s (the
		// timeout is the interval): on this shared machine, under the
		// other e2e scenarios, a 1s timeout to loopback sometimes expires,
		// and a health probe that fails once is a P1 (the runbook's
		// "immediate alert").
		AgentInterval: time.Second, ProbeInterval: 3 * time.Second, ScrapeInterval: 2 * time.Second,
		RuleScale: fleetRuleScale, RouteScale: fleetRouteScale, PeerTimeout: fleetPeerTimeout, GossipInterval: fleetGossip,
		FastGroupWait: true, Heartbeat: 10 * time.Second, ResendInterval: 30 * time.Second,
		RetryInitial: 100 * time.Millisecond, RetryMax: time.Second,
	})
	if err != nil {
		t.Fatalf("starting the fleet: %v\n%s", err, logs)
	}
	t.Cleanup(func() {
		if t.Failed() {
			var procs []*fleet.Proc
			for _, am := range f.AMs {
				procs = append(procs, am.Proc)
			}
			procs = append(procs, f.Prometheus.Proc, f.SMTP.Proc)
			for _, a := range f.Agents {
				procs = append(procs, a.Proc)
			}
			for _, p := range procs {
				t.Logf("%s (%s):\n%s", p.Name, p.Log, p.Tail(15))
			}
		}
		f.Close()
	})
	return f
}

// TestFleet proves the fleet's promises at small scale, one scenario of
// docs/fleet.md each:
//
//  1. an incident on several hosts gives exactly one Slack #incidents
//     message and one PagerDuty trigger per incident, despite three
//     replicas and the agents' resends, and one resolution each; a P3 goes
//     to #alerts and e-mail instead, and a P3 on a host with a P1 is
//     inhibited;
//  2. the replica that sent the notifications is killed mid-incident:
//     nothing lost (an incident that starts meanwhile is notified by the
//     others, and every resolution), nothing doubled; back in the cluster,
//     it doubles nothing either;
//  3. an agent killed: the central TokPulseAgentDown fires for exactly that
//     host, through the same channels;
//  4. the central webhook down while the agents queue events: afterwards
//     every event has arrived, none twice.
func TestFleet(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	f := startFleet(t, ctx)
	h := f.Agents // fleet-001 .. fleet-005
	wait := func(timeout time.Duration, what string, cond func() bool) {
		t.Helper()
		testutil.Eventually(t, timeout, what, cond)
	}
	notices := func() []fleet.Notice {
		t.Helper()
		ns, err := f.Notices()
		if err != nil {
			t.Fatal(err)
		}
		return ns
	}
	// notified waits for alert on host (with label probe, when not "")
	// to be notified on every channel of keys, e.g. "slack #incidents
	// firing".
	notified := func(timeout time.Duration, alert, host, probe string, keys ...string) {
		t.Helper()
		wait(timeout, fmt.Sprintf("%s on %s (%s): %s", alert, host, probe, strings.Join(keys, ", ")), func() bool {
			seen := map[string]bool{}
			for _, n := range notices() {
				if n.Alert == alert && n.Host == host && (probe == "" || n.Labels["probe"] == probe) {
					seen[n.Key()] = true
				}
			}
			for _, k := range keys {
				if !seen[k] {
					return false
				}
			}
			return true
		})
	}
	p1Firing := []string{"slack #incidents firing", "pagerduty firing"}
	p1Resolved := []string{"slack #incidents resolved", "pagerduty resolved"}

	// Scenario 1: /health fails on three hosts (P1); then a rate-limit
	// line in the app log of fleet-003 and fleet-004 (P3,
	// TokPulseRateLimitLogged). fleet-003's P3 is inhibited by its P1,
	// which already fires (inhibition holds back what arrives while its
	// source fires).
	for _, a := range h[:3] {
		a.App.Fail("/health", true)
	}
	for _, a := range h[:3] {
		notified(30*time.Second, "TokPulseHealthCheckFailed", a.Host, "", p1Firing...)
	}
	for _, a := range h[2:4] {
		appendLine(t, filepath.Join(a.Dir, "log", "app.log"), "2026-11-27T05:36:00Z WARN rate limit exceeded for client 203.0.113.7")
	}
	notified(30*time.Second, "TokPulseRateLimitLogged", "fleet-004", "", "slack #alerts firing", "email firing")
	wait(20*time.Second, "fleet-003's P3 suppressed by its P1", func() bool {
		alerts, err := f.AMs[0].Alerts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "TokPulseRateLimitLogged" && a.Labels["host"] == "fleet-003" {
				return a.Status.State == "suppressed" && len(a.Status.InhibitedBy) > 0
			}
		}
		return false
	})

	// Scenario 2: mid-incident, kill the replica that sent the
	// notifications, once its peers know what it sent (its gossip queue
	// is empty and nothing has been sent for 20 gossip rounds).
	var killed *fleet.Alertmanager
	most := 0.0
	for _, am := range f.AMs {
		n, err := am.Metric(ctx, "alertmanager_notifications_total", map[string]string{"integration": "slack"})
		if err != nil {
			t.Fatal(err)
		}
		if n > most {
			killed, most = am, n
		}
	}
	if killed == nil {
		t.Fatal("no replica counts a Slack notification")
	}
	if err := f.Settled(ctx, killed, 20*fleetGossip, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	killed.Proc.Kill()
	t.Logf("killed %s, which had sent %v Slack notifications", killed.Name, most)
	var survivors []*fleet.Alertmanager
	for _, am := range f.AMs {
		if am != killed {
			survivors = append(survivors, am)
		}
	}

	// Scenario 4 begins: the webhook goes away; the agents' events wait
	// in their outboxes. Scenario 3: fleet-005's agent dies. And a new
	// incident while the replica is dead: fleet-002's /ready.
	f.Webhook.Down()
	h[4].Proc.Kill()
	killedAt := time.Now()
	h[1].App.Fail("/ready", true)
	notified(30*time.Second, "TokPulseHealthCheckFailed", "fleet-002", "ready", p1Firing...)
	notified(30*time.Second, "TokPulseAgentDown", "fleet-005", "", p1Firing...)
	for _, n := range notices() {
		if n.Alert == "TokPulseAgentDown" && n.Key() == "slack #incidents firing" {
			t.Logf("TokPulseAgentDown in Slack %s after the kill (for: %s, scrape and evaluation every 2s)",
				n.At.Sub(killedAt).Round(10*time.Millisecond), 2*time.Minute/fleetRuleScale)
		}
	}

	// Hold the incidents through one resend of the agents (30s): every
	// live replica receives every alert again, and says nothing again.
	received := func(am *fleet.Alertmanager) float64 {
		n, err := am.Metric(ctx, "alertmanager_alerts_received_total", map[string]string{"status": "firing"})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := received(survivors[0])
	wait(45*time.Second, "the agents' resend of their firing alerts", func() bool {
		return received(survivors[0]) >= before+4 // 3 x /health and fleet-002's /ready
	})

	// Everything ends while the replica is still dead: the agent comes
	// back, the endpoints recover, the webhook returns.
	if err := f.StartAgent(ctx, h[4]); err != nil {
		t.Fatal(err)
	}
	for _, a := range h[:3] {
		a.App.Fail("/health", false)
	}
	h[1].App.Fail("/ready", false)
	if err := f.Webhook.Up(); err != nil {
		t.Fatal(err)
	}
	for _, a := range h[:3] {
		notified(30*time.Second, "TokPulseHealthCheckFailed", a.Host, "", p1Resolved...)
	}
	notified(30*time.Second, "TokPulseHealthCheckFailed", "fleet-002", "ready", p1Resolved...)
	notified(30*time.Second, "TokPulseAgentDown", "fleet-005", "", p1Resolved...)
	notified(30*time.Second, "TokPulseRateLimitLogged", "fleet-004", "", "slack #alerts resolved", "email resolved")

	// Scenario 2, the end: once no alert is left, the replica rejoins,
	// and a new incident is notified once by the whole cluster. (A replica
	// that rejoins while alerts fire hears of them later than its peers,
	// at the senders' next resend, and may re-announce one that resolves
	// during its wait: docs/fleet.md.)
	wait(60*time.Second, "no alert left in Prometheus or the replicas", func() bool {
		res, err := f.Query(ctx, "ALERTS")
		if err != nil || len(res) > 0 {
			return false
		}
		for _, am := range survivors {
			alerts, err := am.Alerts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range alerts {
				if a.Status.State != "unprocessed" {
					return false
				}
			}
		}
		return true
	})
	if err := killed.Proc.Start(); err != nil {
		t.Fatal(err)
	}
	for _, am := range f.AMs {
		wait(60*time.Second, am.Name+" in a cluster of three", func() bool { return am.ClusterReady(ctx, fleet.Replicas) })
	}
	h[3].App.Fail("/live", true)
	notified(30*time.Second, "TokPulseHealthCheckFailed", "fleet-004", "live", p1Firing...)
	h[3].App.Fail("/live", false)
	notified(30*time.Second, "TokPulseHealthCheckFailed", "fleet-004", "live", p1Resolved...)

	// Scenario 4: every event every agent produced (their file outputs)
	// reaches the webhook.
	var events []fleet.Event
	wait(60*time.Second, "every event at the webhook", func() bool {
		var err error
		if events, err = f.Events(); err != nil {
			t.Fatal(err)
		}
		got := f.Webhook.Stats().Events
		for _, e := range events {
			if _, ok := got[e.ID]; !ok && e.Kind != "heartbeat" {
				return false
			}
		}
		return true
	})
	// A doubled notification would come within a replica's wait (its
	// position times the peer timeout) of the first.
	time.Sleep(fleet.Replicas * fleetPeerTimeout)

	all := notices()
	checkNotices(t, all, events)

	// Scenario 3 in Prometheus' own words: TokPulseAgentDown fired for
	// fleet-005 and no other host.
	res, err := f.Query(ctx, `max_over_time(ALERTS{alertname="TokPulseAgentDown",alertstate="firing"}[10m])`)
	if err != nil {
		t.Fatal(err)
	}
	var downHosts []string
	for _, s := range res {
		downHosts = append(downHosts, s.Labels["host"])
	}
	if !slices.Equal(downHosts, []string{"fleet-005"}) {
		t.Errorf("TokPulseAgentDown fired for %v, want [fleet-005]", downHosts)
	}
	if bad := f.Chat.Bad(); len(bad) > 0 {
		t.Errorf("the stand-ins refused: %q", bad)
	}

	// Scenario 4: every event arrived (above), none twice, every request
	// signed.
	st := f.Webhook.Stats()
	for id, n := range st.Deliveries {
		if n > 1 {
			e := st.Events[id]
			t.Errorf("event %s (%s %s on %s) delivered %d times", id, e.Kind, e.AlertName, e.Host, n)
		}
	}
	if st.BadSignatures > 0 {
		t.Errorf("%d requests with a bad signature", st.BadSignatures)
	}
	t.Logf("webhook: %d requests, %d events; since it came back: peak %d connections open, %d requests in flight",
		len(st.Requests), len(st.Events), st.PeakOpen, st.PeakInFlight)
	if t.Failed() {
		sort.Slice(all, func(i, j int) bool { return all[i].At.Before(all[j].At) })
		for _, n := range all {
			t.Logf("%s %-17s %-8s %s %s on %s", n.At.Format("15:04:05.000"), n.Channel, n.Status, n.Incident, n.Alert, n.Host)
		}
	}
}

// checkNotices checks what the channels received against the incidents
// the agents opened (their initial events) and the central rules':
//
//   - each P1 incident of an agent: exactly one Slack #incidents message
//     and one PagerDuty trigger, one of each for its resolution, nothing
//     on #alerts or by e-mail; each P3 the other way round; fleet-003's
//     P3, inhibited by its P1 from start to end, nothing at all;
//   - the central TokPulseAgentDown: fleet-005 only, once, as a P1;
//   - every incident on every channel (the central rules'
//     TokPulseAgentHeartbeatMissing too, which the webhook's outage and
//     the compressed 15m window make fire and resolve): firing and
//     resolved alternate, beginning with firing, so that nothing is
//     announced or resolved twice.
func checkNotices(t *testing.T, all []fleet.Notice, events []fleet.Event) {
	t.Helper()
	p1 := map[string]int{"slack #incidents firing": 1, "slack #incidents resolved": 1, "pagerduty firing": 1, "pagerduty resolved": 1}
	p3 := map[string]int{"slack #alerts firing": 1, "slack #alerts resolved": 1, "email firing": 1, "email resolved": 1}
	want := map[string]map[string]int{}
	desc := map[string]string{}
	for _, e := range events {
		if e.Kind != "initial" {
			continue
		}
		id := e.IncidentID
		desc[id] = fmt.Sprintf("%s %s on %s%s", e.Severity, e.AlertName, e.Host, labelString(map[string]string{"probe": e.Labels["probe"]}))
		switch {
		case e.Host == "fleet-003" && e.AlertName == "TokPulseRateLimitLogged":
			want[id] = map[string]int{}
		case e.Severity == "P1":
			want[id] = p1
		case e.Severity == "P3":
			want[id] = p3
		default:
			t.Errorf("unexpected incident %s: %s", id, desc[id])
		}
	}
	// fleet-001..003 /health, fleet-002 /ready, fleet-004 /live, two P3.
	if len(want) != 7 {
		var d []string
		for _, x := range desc {
			d = append(d, x)
		}
		sort.Strings(d)
		t.Errorf("the agents opened %d incidents, want 7:\n%s", len(want), strings.Join(d, "\n"))
	}
	byIncident := map[string][]fleet.Notice{}
	for _, n := range all {
		byIncident[n.Incident] = append(byIncident[n.Incident], n)
	}
	down := 0
	for id, ns := range byIncident {
		if _, ok := want[id]; ok {
			continue
		}
		switch ns[0].Alert {
		case "TokPulseAgentDown":
			if ns[0].Host != "fleet-005" {
				t.Errorf("TokPulseAgentDown notified for %s", ns[0].Host)
			}
			want[id], desc[id] = p1, "P1 TokPulseAgentDown on "+ns[0].Host
			down++
		case "TokPulseAgentHeartbeatMissing":
		default:
			t.Errorf("unexpected notification %+v", ns[0])
		}
	}
	if down != 1 {
		t.Errorf("TokPulseAgentDown: %d incidents notified, want 1", down)
	}
	got := fleet.CountByIncident(all)
	for id, w := range want {
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range got[id] {
			keys[k] = true
		}
		for k := range keys {
			if got[id][k] != w[k] {
				t.Errorf("%s (incident %s): %d × %s, want %d", desc[id], id, got[id][k], k, w[k])
			}
		}
	}
	for id, ns := range byIncident {
		last := map[string]string{}
		sort.SliceStable(ns, func(i, j int) bool { return ns[i].At.Before(ns[j].At) })
		for _, n := range ns {
			prev := last[n.Channel]
			if n.Status == prev || (prev == "" && n.Status != "firing") {
				t.Errorf("%s on %s (incident %s): %s on %s after %q", n.Alert, n.Host, id, n.Status, n.Channel, prev)
			}
			last[n.Channel] = n.Status
		}
	}
	for _, n := range all {
		if n.Channel == "slack #incidents" && n.Status == "firing" && n.Alert == "TokPulseHealthCheckFailed" &&
			(!strings.Contains(n.Text, "Severity: P1") || !strings.Contains(n.Text, "Service: TokPulse") || !strings.Contains(n.Text, "Impact: TokPulse")) {
			t.Errorf("Slack message lacks the runbook's initial notification:\n%s", n.Text)
		}
	}
}

// appendLine appends one line to a log file, as the application would.
func appendLine(t *testing.T, path, line string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}
