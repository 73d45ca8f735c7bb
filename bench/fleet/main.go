// Command fleet runs the fleet benchmark of docs/fleet.md: N
// tokpulse-agents on this machine with Debian's Prometheus, a
// three-replica Alertmanager cluster and stand-ins for Slack, PagerDuty,
// SMTP and the central webhook (internal/testutil/fleet), all with the
// shipped configuration and timings, through five scenarios:
//
//  1. /health fails on 5 hosts: one Slack #incidents message and one
//     PagerDuty trigger per incident, one resolution each;
//  2. a fleet-wide burst (/live fails on every other live host); the
//     replica that sent the notifications is killed mid-incident;
//  3. three agents killed: TokPulseAgentDown fires for exactly those, and
//     how long detection takes;
//  4. the central webhook down for -outage while all of this happens: on
//     its return every event arrives, and the load it takes;
//  5. the cost: per-agent CPU and RSS, scrape durations, the central
//     side's memory, beside one node_exporter.
//
// bench/fleet.sh builds the agent and runs it. Every wait is bounded; the
// whole run stops by itself. The report goes to standard output,
// progress to standard error.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil/fleet"
)

func main() {
	n := flag.Int("n", 50, "agents (hosts)")
	bin := flag.String("bin", "bin/tokpulse-agent", "tokpulse-agent binary")
	outage := flag.Duration("outage", 5*time.Minute, "how long the central webhook is down")
	retryMax := flag.Duration("retry-max", 30*time.Second, "the agents' notify.retry.max_interval")
	keep := flag.Bool("keep", false, "keep the fleet's directory (logs, data) for inspection")
	flag.Parse()
	if *n < 10 {
		fmt.Fprintln(os.Stderr, "fleet: -n must be at least 10 (5 hosts for scenario 1, 3 to kill, the rest for the burst)")
		os.Exit(2)
	}
	b := &bench{n: *n, outage: *outage, retryMax: *retryMax, start: time.Now(),
		log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	repo, err := os.Getwd()
	if err == nil {
		*bin, err = filepath.Abs(*bin)
	}
	if err != nil {
		b.log.Error("Locating the repository failed", "err", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "tokpulse-fleet-")
	if err != nil {
		b.log.Error("Creating the fleet's directory failed", "err", err)
		os.Exit(1)
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	// The run's own bound, beyond every wait below: a stuck step cannot
	// keep the fleet running.
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute+*outage+*retryMax*3/2)
	defer cancel()
	err = b.run(ctx, fleet.Options{Agents: *n, Bin: *bin, Repo: repo, Dir: dir, Logger: b.log,
		HostCollectors: true, NodeExporter: true, RetryMax: *retryMax})
	if b.f != nil {
		b.f.Close()
	}
	b.report()
	if *keep {
		fmt.Printf("\nfleet directory kept: %s\n", dir)
	}
	if err != nil {
		fmt.Printf("\nFAILED: %v\n", err)
		os.Exit(1)
	}
	if b.failures > 0 {
		fmt.Printf("\nFAILED: %d check(s) above\n", b.failures)
		os.Exit(1)
	}
}

// bench is one run; its fields are what the report needs.
type bench struct {
	n        int
	outage   time.Duration
	retryMax time.Duration
	start    time.Time
	log      *slog.Logger
	f        *fleet.Fleet

	lines    []string
	failures int
}

func (b *bench) say(format string, args ...any) {
	b.lines = append(b.lines, fmt.Sprintf(format, args...))
}

func (b *bench) check(ok bool, format string, args ...any) {
	mark := "ok  "
	if !ok {
		mark = "FAIL"
		b.failures++
	}
	b.say("%s "+format, append([]any{mark}, args...)...)
}

func (b *bench) progress(msg string, args ...any) {
	b.log.Info(msg, append([]any{"elapsed", time.Since(b.start).Round(time.Second)}, args...)...)
}

func (b *bench) report() {
	fmt.Printf("fleet benchmark: %d agents, webhook outage %s, agents' retry.max_interval %s, wall time %s\n",
		b.n, b.outage, b.retryMax, time.Since(b.start).Round(time.Second))
	for _, l := range b.lines {
		fmt.Println(l)
	}
}

// wait polls cond every 250ms until it holds, ctx ends or timeout passes.
func wait(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}

// firstNotices returns, per host, the first notice of key for alert (with
// label probe, when not "").
func (b *bench) firstNotices(alert, probe, key string) map[string]time.Time {
	ns, err := b.f.Notices()
	if err != nil {
		b.log.Warn("Reading the notices failed", "err", err)
	}
	out := map[string]time.Time{}
	for _, n := range ns {
		if n.Alert == alert && n.Key() == key && (probe == "" || n.Labels["probe"] == probe) {
			if t, ok := out[n.Host]; !ok || n.At.Before(t) {
				out[n.Host] = n.At
			}
		}
	}
	return out
}

// waitNotices waits until every host has a notice of each key.
func (b *bench) waitNotices(ctx context.Context, timeout time.Duration, alert, probe string, hosts []string, keys ...string) (map[string]time.Time, error) {
	var first map[string]time.Time
	err := wait(ctx, timeout, fmt.Sprintf("%s (%s) %v on %d hosts", alert, probe, keys, len(hosts)), func() bool {
		for i, k := range keys {
			got := b.firstNotices(alert, probe, k)
			if i == 0 {
				first = got
			}
			for _, h := range hosts {
				if _, ok := got[h]; !ok {
					return false
				}
			}
		}
		return true
	})
	return first, err
}

func hostsOf(as []*fleet.Agent) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Host
	}
	return out
}

// The channel events of a P1 incident (Notice.Key).
const (
	slackFiring       = "slack #incidents firing"
	slackResolved     = "slack #incidents resolved"
	pagerdutyFiring   = "pagerduty firing"
	pagerdutyResolved = "pagerduty resolved"
)

func (b *bench) run(ctx context.Context, opts fleet.Options) error {
	b.progress("Starting the fleet", "agents", b.n)
	t0 := time.Now()
	f, err := fleet.Start(ctx, opts)
	if err != nil {
		return err
	}
	b.f = f
	b.say("fleet ready in %s: %d agents, 3 Alertmanager replicas, Prometheus (scrape and evaluation every 15s), node_exporter", time.Since(t0).Round(time.Second), b.n)
	h := f.Agents
	s1, killedAgents, burst := h[:5], h[b.n-3:], h[5:b.n-3]

	// Scenario 5's window: the whole run, from here to the end of
	// scenario 4.
	u0, err := b.usage()
	if err != nil {
		return err
	}
	w0 := time.Now()

	// Scenario 1.
	b.progress("Scenario 1: /health fails on 5 hosts")
	tA := time.Now()
	for _, a := range s1 {
		a.App.Fail("/health", true)
	}
	first, err := b.waitNotices(ctx, 2*time.Minute, "TokPulseHealthCheckFailed", "health", hostsOf(s1), slackFiring, pagerdutyFiring)
	if err != nil {
		return err
	}
	var lat []time.Duration
	for _, t := range first {
		lat = append(lat, t.Sub(tA))
	}
	b.say("S1 /health broken -> Slack #incidents: median %s, max %s (probe every 10s, evaluation every 10s, P1 group_wait 10s)", median(lat), slices.Max(lat).Round(100*time.Millisecond))
	// Hold through one resend of every agent (every minute): each replica
	// hears of every alert again.
	base := map[*fleet.Alertmanager]float64{}
	for _, am := range f.AMs {
		base[am] = b.amMetric(ctx, am, "alertmanager_alerts_received_total", map[string]string{"status": "firing"})
	}
	err = wait(ctx, 2*time.Minute, "the agents' resend to every replica", func() bool {
		for _, am := range f.AMs {
			if b.amMetric(ctx, am, "alertmanager_alerts_received_total", map[string]string{"status": "firing"}) < base[am]+float64(len(s1)) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return err
	}

	uMid, err := b.usage()
	if err != nil {
		return err
	}

	// Scenarios 2, 3 and 4 start together.
	b.progress("Scenarios 2-4: webhook down, 3 agents killed, /live fails on the rest; scenario 1 recovers")
	tB := time.Now()
	for _, a := range s1 {
		a.App.Fail("/health", false)
	}
	f.Webhook.Down()
	for _, a := range killedAgents {
		a.Proc.Kill()
	}
	for _, a := range burst {
		a.App.Fail("/live", true)
	}
	// Scenario 3: when Prometheus and the channels see each dead agent.
	detect := &detection{firing: map[string]time.Time{}}
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer dcancel()
	var dwg sync.WaitGroup
	dwg.Add(1)
	go func() { defer dwg.Done(); b.watchAgentDown(dctx, detect, hostsOf(killedAgents)) }()

	firstBurst, err := b.waitNotices(ctx, 3*time.Minute, "TokPulseHealthCheckFailed", "live", hostsOf(burst), slackFiring, pagerdutyFiring)
	if err != nil {
		return err
	}
	var bl []time.Time
	for _, t := range firstBurst {
		bl = append(bl, t)
	}
	slices.SortFunc(bl, func(x, y time.Time) int { return x.Compare(y) })
	b.say("S2 burst: %d incidents at once -> Slack #incidents from %s to %s after the break (P1 group_wait 10s)",
		len(burst), bl[0].Sub(tB).Round(100*time.Millisecond), bl[len(bl)-1].Sub(tB).Round(100*time.Millisecond))
	if _, err := b.waitNotices(ctx, 3*time.Minute, "TokPulseHealthCheckFailed", "health", hostsOf(s1), slackResolved, pagerdutyResolved); err != nil {
		return err
	}
	// Scenario 2: kill the replica that sent them, once its peers know.
	var sender *fleet.Alertmanager
	most := -1.0
	for _, am := range f.AMs {
		if v := b.amMetric(ctx, am, "alertmanager_notifications_total", nil); v > most {
			sender, most = am, v
		}
	}
	if err := f.Settled(ctx, sender, 2*time.Second, time.Minute); err != nil {
		return err
	}
	sender.Proc.Kill()
	tKill := time.Now()
	b.say("S2 killed %s (it had sent %.0f notifications) %s after the burst began", sender.Name, most, tKill.Sub(tB).Round(time.Second))
	b.progress("Replica killed", "replica", sender.Name)
	var survivor *fleet.Alertmanager
	for _, am := range f.AMs {
		if am != sender {
			survivor = am
			break
		}
	}
	before := b.amMetric(ctx, survivor, "alertmanager_alerts_received_total", map[string]string{"status": "firing"})
	err = wait(ctx, 2*time.Minute, "the agents' resend after the kill", func() bool {
		return b.amMetric(ctx, survivor, "alertmanager_alerts_received_total", map[string]string{"status": "firing"}) >= before+float64(len(burst))
	})
	if err != nil {
		return err
	}
	b.progress("Burst recovers")
	for _, a := range burst {
		a.App.Fail("/live", false)
	}
	if _, err := b.waitNotices(ctx, 3*time.Minute, "TokPulseHealthCheckFailed", "live", hostsOf(burst), slackResolved, pagerdutyResolved); err != nil {
		return err
	}
	// Scenario 3: once detected, the dead agents come back on their state.
	// for: 2m, after a scrape interval and an evaluation interval.
	if err := wait(ctx, time.Until(tB.Add(4*time.Minute)), "TokPulseAgentDown for the killed agents", func() bool {
		return detect.complete(hostsOf(killedAgents))
	}); err != nil {
		return err
	}
	b.progress("Restarting the killed agents")
	for _, a := range killedAgents {
		if err := f.StartAgent(ctx, a); err != nil {
			return err
		}
	}
	// Scenario 4: the webhook returns.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(tB.Add(b.outage))):
	}
	if err := f.Webhook.Up(); err != nil {
		return err
	}
	tUp := time.Now()
	b.progress("Webhook back")
	var delivered time.Time
	// An agent's next attempt comes within 1.5 x retry.max_interval (the
	// backoff's jitter is +-50%).
	err = wait(ctx, max(2*time.Minute, b.retryMax*3/2+time.Minute), "every event at the webhook", func() bool {
		events, err := f.Events()
		if err != nil {
			return false
		}
		got := f.Webhook.Stats().Events
		for _, e := range events {
			if _, ok := got[e.ID]; !ok && e.Kind != "heartbeat" {
				return false
			}
		}
		delivered = time.Now()
		return true
	})
	if err != nil {
		return err
	}
	if _, err := b.waitNotices(ctx, 3*time.Minute, "TokPulseAgentDown", "", hostsOf(killedAgents), slackResolved, pagerdutyResolved); err != nil {
		return err
	}
	dcancel()
	dwg.Wait()
	u1, err := b.usage()
	if err != nil {
		return err
	}
	w1 := time.Now()
	// A doubled notification would come within the last replica's wait
	// (2 x peer timeout, 30s) of the first.
	b.progress("Waiting 30s for late duplicates")
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
	}
	b.progress("Checking")
	b.checkScenarios(ctx, s1, burst, killedAgents, tB, detect)
	b.checkWebhook(tUp, delivered)
	b.cost(ctx, u0, uMid, u1, w1.Sub(w0))
	return nil
}

// detection records when TokPulseAgentDown first fired in Prometheus for
// each host.
type detection struct {
	mu     sync.Mutex
	firing map[string]time.Time
}

func (d *detection) complete(hosts []string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range hosts {
		if _, ok := d.firing[h]; !ok {
			return false
		}
	}
	return true
}

// watchAgentDown polls Prometheus' ALERTS every second until ctx ends.
func (b *bench) watchAgentDown(ctx context.Context, d *detection, hosts []string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		res, err := b.f.Query(ctx, `ALERTS{alertname="TokPulseAgentDown",alertstate="firing"}`)
		if err == nil {
			d.mu.Lock()
			for _, s := range res {
				if _, ok := d.firing[s.Labels["host"]]; !ok {
					d.firing[s.Labels["host"]] = time.Now()
				}
			}
			d.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (b *bench) amMetric(ctx context.Context, am *fleet.Alertmanager, name string, labels map[string]string) float64 {
	v, err := am.Metric(ctx, name, labels)
	if err != nil {
		return math.NaN()
	}
	return v
}

// checkScenarios counts what the channels received per incident.
func (b *bench) checkScenarios(ctx context.Context, s1, burst, killed []*fleet.Agent, tB time.Time, d *detection) {
	ns, err := b.f.Notices()
	if err != nil {
		b.check(false, "reading the notices: %v", err)
		return
	}
	events, err := b.f.Events()
	if err != nil {
		b.check(false, "reading the agents' events: %v", err)
		return
	}
	counts := fleet.CountByIncident(ns)
	exact := func(name string, ids []string, keys []string) {
		bad := 0
		for _, id := range ids {
			for _, k := range keys {
				if counts[id][k] != 1 {
					bad++
					b.say("     %s incident %s: %d x %s", name, id, counts[id][k], k)
				}
			}
		}
		b.check(bad == 0, "%s: %d incidents x %d channel events (firing and resolved on Slack #incidents and PagerDuty), each exactly once: %d wrong",
			name, len(ids), len(keys), bad)
	}
	incidents := func(host map[string]bool, probe string) []string {
		var ids []string
		for _, e := range events {
			if e.Kind == "initial" && e.AlertName == "TokPulseHealthCheckFailed" && host[e.Host] && e.Labels["probe"] == probe {
				ids = append(ids, e.IncidentID)
			}
		}
		return ids
	}
	set := func(as []*fleet.Agent) map[string]bool {
		m := map[string]bool{}
		for _, a := range as {
			m[a.Host] = true
		}
		return m
	}
	p1 := append(append([]string(nil), slackFiring, pagerdutyFiring), slackResolved, pagerdutyResolved)
	exact("S1 /health on 5 hosts, 3 replicas", incidents(set(s1), "health"), p1)
	exact(fmt.Sprintf("S2 /live burst on %d hosts, replica killed mid-incident", len(burst)), incidents(set(burst), "live"), p1)
	for id, c := range counts {
		if c["email firing"] > 0 || c["slack #alerts firing"] > 0 {
			b.say("     P3/P4 incident %s: %v", id, c)
		}
	}

	// Scenario 3.
	res, err := b.f.Query(ctx, `max_over_time(ALERTS{alertname="TokPulseAgentDown",alertstate="firing"}[20m])`)
	if err != nil {
		b.check(false, "querying ALERTS: %v", err)
		return
	}
	var down []string
	for _, s := range res {
		down = append(down, s.Labels["host"])
	}
	sort.Strings(down)
	want := hostsOf(killed)
	b.check(slices.Equal(down, want), "S3 TokPulseAgentDown fired for %v; killed %v", down, want)
	downNotices := map[string]int{}
	for _, n := range ns {
		if n.Alert == "TokPulseAgentDown" {
			downNotices[n.Host+" "+n.Key()]++
		}
	}
	okNotices := len(downNotices) == len(want)*4
	for _, v := range downNotices {
		okNotices = okNotices && v == 1
	}
	b.check(okNotices, "S3 TokPulseAgentDown notices: %v", downNotices)
	var prom, slack []time.Duration
	firstSlack := b.firstNotices("TokPulseAgentDown", "", slackFiring)
	d.mu.Lock()
	for _, h := range want {
		prom = append(prom, d.firing[h].Sub(tB))
		slack = append(slack, firstSlack[h].Sub(tB))
	}
	d.mu.Unlock()
	b.say("S3 time to detection after the kill (for: 2m, scrape and evaluation every 15s): firing in Prometheus median %s max %s; Slack #incidents median %s max %s",
		median(prom), slices.Max(prom).Round(100*time.Millisecond), median(slack), slices.Max(slack).Round(100*time.Millisecond))
	heartbeat, _ := b.f.Query(ctx, `max_over_time(ALERTS{alertname="TokPulseAgentHeartbeatMissing",alertstate="firing"}[20m])`)
	pending, _ := b.f.Query(ctx, `max_over_time(ALERTS{alertname="TokPulseAgentHeartbeatMissing",alertstate="pending"}[20m])`)
	b.check(len(heartbeat) == 0, "S3 TokPulseAgentHeartbeatMissing (15m of history and 15m without a delivery, then for 5m) never fired: %d firing, %d pending", len(heartbeat), len(pending))

	// Nothing announced or resolved twice in a row, on any channel.
	byIncident := map[string][]fleet.Notice{}
	for _, n := range ns {
		byIncident[n.Incident] = append(byIncident[n.Incident], n)
	}
	bad := 0
	for _, list := range byIncident {
		sort.SliceStable(list, func(i, j int) bool { return list[i].At.Before(list[j].At) })
		last := map[string]string{}
		for _, n := range list {
			if prev := last[n.Channel]; n.Status == prev || (prev == "" && n.Status != "firing") {
				bad++
				b.say("     %s on %s: %s %s after %q at %s", n.Alert, n.Host, n.Channel, n.Status, prev, n.At.Format("15:04:05.000"))
			}
			last[n.Channel] = n.Status
		}
	}
	b.check(bad == 0, "every incident, every channel: firing and resolved alternate (%d incidents, %d notices); %d out of turn", len(byIncident), len(ns), bad)
	others := map[string]int{}
	for _, n := range ns {
		if n.Alert != "TokPulseHealthCheckFailed" && n.Alert != "TokPulseAgentDown" {
			others[n.Alert+" "+n.Key()]++
		}
	}
	if len(others) > 0 {
		b.say("     other notices: %v", others)
	}
	if bad := b.f.Chat.Bad(); len(bad) > 0 {
		b.check(false, "stand-ins refused %d requests: %q", len(bad), bad)
	}
}

// checkWebhook reports scenario 4.
func (b *bench) checkWebhook(up, delivered time.Time) {
	st := b.f.Webhook.Stats()
	events, _ := b.f.Events()
	kinds := map[string]int{}
	for _, e := range events {
		kinds[e.Kind]++
	}
	dups := 0
	for _, n := range st.Deliveries {
		if n > 1 {
			dups += n - 1
		}
	}
	perSec := map[int64]int{}
	var reqs, evs int
	for _, r := range st.Requests {
		if r.At.Before(up) {
			continue
		}
		reqs++
		evs += r.Events
		perSec[r.At.Unix()]++
	}
	conns := map[int64]int{}
	for _, c := range st.Connections {
		if !c.Before(up) {
			conns[c.Unix()]++
		}
	}
	peakRate, peakConns := 0, 0
	for _, v := range perSec {
		peakRate = max(peakRate, v)
	}
	for _, v := range conns {
		peakConns = max(peakConns, v)
	}
	// When each agent first got through, and the busiest second: a fleet
	// retrying in step shows as many agents in one second.
	firstOK := map[string]time.Time{}
	bySec := map[int64]map[string]bool{}
	for _, r := range st.Requests {
		if r.At.Before(up) {
			continue
		}
		if _, ok := firstOK[r.Host]; !ok {
			firstOK[r.Host] = r.At
		}
		if bySec[r.At.Unix()] == nil {
			bySec[r.At.Unix()] = map[string]bool{}
		}
		bySec[r.At.Unix()][r.Host] = true
	}
	var firsts []time.Duration
	for _, t := range firstOK {
		firsts = append(firsts, t.Sub(up))
	}
	var busiest int64
	for sec, hosts := range bySec {
		if len(hosts) > len(bySec[busiest]) {
			busiest = sec
		}
	}
	if len(firsts) > 0 {
		slices.Sort(firsts)
		b.say("S4 each agent's first delivery after the outage: first %s, median %s, last %s; busiest second %s after: %d requests from %d agents",
			firsts[0].Round(100*time.Millisecond), median(firsts), firsts[len(firsts)-1].Round(100*time.Millisecond),
			time.Unix(busiest, 0).Sub(up).Round(time.Second), perSec[busiest], len(bySec[busiest]))
	}
	drain := delivered.Sub(up)
	b.say("S4 events the agents produced (file outputs): %v", kinds)
	b.check(drain > 0, "S4 every non-heartbeat event at the webhook %s after it came back", drain.Round(100*time.Millisecond))
	b.say("S4 after the outage: %d requests carrying %d events; peak %d requests/s (mean %.2f/s over the drain), peak %d requests in flight, peak %d connections open, peak %d new connections/s",
		reqs, evs, peakRate, float64(reqs)/math.Max(drain.Seconds(), 1), st.PeakInFlight, st.PeakOpen, peakConns)
	b.check(dups == 0, "S4 duplicates by event id at the receiver: %d; bad signatures: %d", dups, st.BadSignatures)
}

// usage is every process's CPU and memory at one moment.
type usage struct {
	agents  map[string]fleet.Usage
	central map[string]fleet.Usage
}

func (b *bench) usage() (usage, error) {
	u := usage{agents: map[string]fleet.Usage{}, central: map[string]fleet.Usage{}}
	for _, a := range b.f.Agents {
		x, err := a.Proc.Usage()
		if err != nil {
			return u, err
		}
		u.agents[a.Host] = x
	}
	procs := []*fleet.Proc{b.f.Prometheus.Proc, b.f.NodeExporter}
	for _, am := range b.f.AMs {
		procs = append(procs, am.Proc)
	}
	for _, p := range procs {
		if !p.Running() {
			continue // the replica killed in scenario 2
		}
		x, err := p.Usage()
		if err != nil {
			return u, err
		}
		u.central[p.Name] = x
	}
	return u, nil
}

// cost reports scenario 5 over the window between u0 and u1.
func (b *bench) cost(ctx context.Context, u0, uMid, u1 usage, window time.Duration) {
	pct := func(a, z fleet.Usage) float64 { return 100 * (z.CPU - a.CPU).Seconds() / window.Seconds() }
	var cpu, rss []float64
	for h, z := range u1.agents {
		a := u0.agents[h]
		if a.PID != z.PID {
			continue // killed and restarted in scenario 3
		}
		cpu = append(cpu, pct(a, z))
		rss = append(rss, float64(z.RSS)/(1<<20))
	}
	sort.Float64s(cpu)
	sort.Float64s(rss)
	q := func(v []float64, p float64) float64 { return v[int(math.Round(p*float64(len(v)-1)))] }
	b.say("S5 window %s: the whole run from ready to the end of scenario 4, agents that ran throughout", window.Round(time.Second))
	b.say("S5 per agent (%d): CPU median %.2f%% p90 %.2f%% max %.2f%% of one core; RSS median %.1f MiB p90 %.1f max %.1f; all agents together %.1f%% CPU, %.0f MiB",
		len(cpu), q(cpu, .5), q(cpu, .9), q(cpu, 1), q(rss, .5), q(rss, .9), q(rss, 1), sum(cpu), sum(rss))
	ne := u1.central["node_exporter"]
	b.say("S5 node_exporter beside them (reference, same scrape): CPU %.2f%% of one core, RSS %.1f MiB", pct(u0.central["node_exporter"], ne), float64(ne.RSS)/(1<<20))
	var midRSS float64
	for _, name := range []string{"prometheus", "am-1", "am-2", "am-3"} {
		m := uMid.central[name]
		midRSS += float64(m.RSS) / (1 << 20)
		z, ok := u1.central[name]
		if !ok {
			b.say("S5 %s: RSS %.1f MiB after scenario 1; killed in scenario 2", name, float64(m.RSS)/(1<<20))
			continue
		}
		b.say("S5 %s: RSS %.1f MiB after scenario 1, %.1f MiB at the end; CPU %.2f%% of one core over the window",
			name, float64(m.RSS)/(1<<20), float64(z.RSS)/(1<<20), pct(u0.central[name], z))
	}
	b.say("S5 central side (Prometheus + 3 replicas) after scenario 1: RSS %.0f MiB", midRSS)
	w := fmt.Sprintf("%ds", int(window.Seconds()))
	for _, x := range []struct{ what, q string }{
		{"agent scrape duration, median of the agents' mean (ms)", `quantile(0.5, avg_over_time(scrape_duration_seconds{job="tokpulse-agent"}[` + w + `])) * 1000`},
		{"agent scrape duration, slowest agent's max (ms)", `max(max_over_time(scrape_duration_seconds{job="tokpulse-agent"}[` + w + `])) * 1000`},
		{"node_exporter scrape duration, mean (ms)", `avg_over_time(scrape_duration_seconds{job="node"}[` + w + `]) * 1000`},
		{"samples per agent scrape, median", `quantile(0.5, scrape_samples_scraped{job="tokpulse-agent"})`},
		{"samples per node_exporter scrape", `scrape_samples_scraped{job="node"}`},
	} {
		res, err := b.f.Query(ctx, x.q)
		if err != nil || len(res) == 0 {
			b.say("S5 %s: no answer (%v)", x.what, err)
			continue
		}
		b.say("S5 %s: %.2f", x.what, res[0].Value)
	}
	if v, err := fleet.ScrapeMetric(ctx, b.f.Prometheus.URL+"/metrics", "prometheus_tsdb_head_series", nil); err == nil {
		b.say("S5 Prometheus head series: %.0f", v)
	}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2].Round(100 * time.Millisecond)
}

func sum(v []float64) float64 {
	t := 0.0
	for _, x := range v {
		t += x
	}
	return t
}
