// Package fleet runs a TokPulse fleet on one machine: N tokpulse-agents
// (each with its own host name, state directory, loopback port and
// stand-in application), Debian's Prometheus scraping them through file_sd
// and evaluating the shipped central rules, a three-replica cluster of
// Debian's Alertmanager loaded with the shipped routing file, and loopback
// stand-ins for what the runbook's channels receive: Slack incoming
// webhooks, PagerDuty's Events API v2, an SMTP server (Debian's
// python3-aiosmtpd) and the central webhook.
//
// Everything listens on 127.0.0.1 only, lives under one directory, and is
// started and stopped by PID. The fleet test (e2e/fleet_test.go) and the
// fleet benchmark (bench/fleet.sh, bench/fleet) drive it; docs/fleet.md
// holds the figures.
package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options shape a fleet. Zero durations keep the shipped defaults.
type Options struct {
	// Agents is the number of hosts, each with one agent.
	Agents int
	// Bin is the tokpulse-agent binary; Repo the repository root, whose
	// packaging/ files the fleet runs; Dir the directory everything goes
	// under (it must exist).
	Bin, Repo, Dir string
	Logger         *slog.Logger

	// AgentInterval is agent.interval (the shipped 10s when 0).
	AgentInterval time.Duration
	// ProbeInterval is every probe's interval and timeout (shipped: 10s,
	// 5s timeout).
	ProbeInterval time.Duration
	// ScrapeInterval is Prometheus' scrape and evaluation interval
	// (shipped: 15s).
	ScrapeInterval time.Duration
	// RuleScale divides every for, keep_firing_for, range and offset of
	// the central rules and of the agents' rule pack (1: as shipped);
	// RouteScale the group_wait, group_interval and repeat_interval of the
	// routing file.
	RuleScale, RouteScale int
	// PeerTimeout is Alertmanager's --cluster.peer-timeout (default 15s):
	// how long a replica waits for the one before it to notify.
	// GossipInterval is its --cluster.gossip-interval (default 200ms): how
	// often a replica passes notification-log entries on, a few per
	// round.
	PeerTimeout, GossipInterval time.Duration
	// HostCollectors keeps the shipped host: section; otherwise every host
	// collector is off, so that this one machine's CPU and disks, shared
	// by every "host" of the fleet, fire nothing.
	HostCollectors bool
	// FastGroupWait sets the agents' P3/P4 group_wait to 0s.
	FastGroupWait bool
	// NodeExporter runs Debian's prometheus-node-exporter beside the
	// agents, scraped by the same Prometheus as job "node": the reference
	// for what one host's exporter costs.
	NodeExporter bool
	// Heartbeat, ResendInterval, RetryInitial and RetryMax set notify's
	// heartbeat, the Alertmanager output's resend_interval and the retry
	// backoff.
	Heartbeat, ResendInterval, RetryInitial, RetryMax time.Duration
}

func (o *Options) defaults() error {
	if o.Agents < 1 {
		return errors.New("a fleet needs at least one agent")
	}
	if o.Bin == "" || o.Repo == "" || o.Dir == "" {
		return errors.New("fleet.Options needs Bin, Repo and Dir")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.AgentInterval == 0 {
		o.AgentInterval = 10 * time.Second
	}
	if o.ScrapeInterval == 0 {
		o.ScrapeInterval = 15 * time.Second
	}
	o.RuleScale, o.RouteScale = max(o.RuleScale, 1), max(o.RouteScale, 1)
	return nil
}

// Fleet is a running fleet. Start builds it; Close stops every process.
type Fleet struct {
	opts Options
	dir  string

	Agents     []*Agent
	AMs        []*Alertmanager
	Prometheus *Prometheus
	Chat       *Chat
	Webhook    *Webhook
	SMTP       *SMTP
	// NodeExporter is the reference exporter (Options.NodeExporter).
	NodeExporter *Proc

	ports            map[string]bool // handed out by freeAddr
	nodeExporterAddr string
	webhookKey       []byte
	webhookKeyFile   string
	agentRules       string
	targetsDir       string
}

// Agent is one host: its agent process and its stand-in application.
type Agent struct {
	Host string
	Addr string // web.listen
	Dir  string // config, state, logs, events file
	App  *App
	Proc *Proc
}

// EventsFile is the agent's JSON-lines file output: every event the agent
// produced, written at once, whatever the other outputs do.
func (a *Agent) EventsFile() string { return filepath.Join(a.Dir, "events.jsonl") }

// Alertmanager is one replica of the cluster.
type Alertmanager struct {
	Name   string
	URL    string
	Gossip string
	Proc   *Proc
}

// Prometheus is the central Prometheus server.
type Prometheus struct {
	URL  string
	Proc *Proc
}

// Replicas is the size of the Alertmanager cluster.
const Replicas = 3

// Start builds and starts the whole fleet and waits until every part is
// ready: the replicas have formed their cluster, every agent serves, and
// Prometheus has scraped every agent. On error, what was started is
// stopped.
func Start(ctx context.Context, opts Options) (f *Fleet, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	f = &Fleet{opts: opts, dir: opts.Dir}
	defer func() {
		if err != nil {
			f.Close()
			f = nil
		}
	}()
	log := opts.Logger
	if f.Chat, err = newChat(); err != nil {
		return f, err
	}
	f.webhookKey = []byte("fleet-webhook-hmac-key")
	f.webhookKeyFile = filepath.Join(f.dir, "webhook.key")
	if err := os.WriteFile(f.webhookKeyFile, append(f.webhookKey, '\n'), 0o600); err != nil {
		return f, err
	}
	webhookAddr, err := f.freeAddr()
	if err != nil {
		return f, err
	}
	if f.Webhook, err = newWebhook(webhookAddr, f.webhookKey); err != nil {
		return f, err
	}
	if f.SMTP, err = startSMTP(f.dir, f.freeAddr); err != nil {
		return f, err
	}
	if err := f.startAlertmanagers(ctx); err != nil {
		return f, err
	}
	if opts.NodeExporter {
		addr, err := f.freeAddr()
		if err != nil {
			return f, err
		}
		f.NodeExporter = &Proc{Name: "node_exporter", Log: filepath.Join(f.dir, "node_exporter.log"),
			Argv: []string{"prometheus-node-exporter", "--web.listen-address=" + addr}}
		f.nodeExporterAddr = addr
		if err := f.NodeExporter.Start(); err != nil {
			return f, err
		}
	}
	f.Prometheus = &Prometheus{}
	promAddr, err := f.freeAddr()
	if err != nil {
		return f, err
	}
	f.Prometheus.URL = "http://" + promAddr
	promCfg := filepath.Join(f.dir, "prometheus.yml")
	if err := f.writePrometheus(promCfg); err != nil {
		return f, err
	}
	if err := check(ctx, "promtool", "check", "config", promCfg); err != nil {
		return f, err
	}
	f.agentRules = filepath.Join(f.dir, "agent-rules", "runbook.yml")
	if _, err := WriteScaledRules(filepath.Join(opts.Repo, RulePack), f.agentRules, opts.RuleScale); err != nil {
		return f, err
	}
	for i := range opts.Agents {
		a, err := f.newAgent(fmt.Sprintf("fleet-%03d", i+1))
		if err != nil {
			return f, err
		}
		f.Agents = append(f.Agents, a)
	}
	// The targets are in place before Prometheus starts and reads them:
	// file_sd's later updates come through inotify, whose instances (128
	// per user by default) a machine running many agents and tests may
	// have used up, leaving only file_sd's 5-minute refresh.
	if err := f.writeTargets(); err != nil {
		return f, err
	}
	argv, err := f.asPrometheusUser(filepath.Join(f.dir, "prometheus-data"))
	if err != nil {
		return f, err
	}
	f.Prometheus.Proc = &Proc{Name: "prometheus", Log: filepath.Join(f.dir, "prometheus.log"), Argv: append(argv,
		"prometheus", "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(f.dir, "prometheus-data"),
		"--web.listen-address="+promAddr, "--storage.tsdb.retention.time=1d")}
	if err := f.Prometheus.Proc.Start(); err != nil {
		return f, err
	}
	log.Info("Fleet starting", "agents", len(f.Agents), "dir", f.dir)
	// Agents start a few at a time: fifty at once on two cores would
	// measure the machine's start-up storm rather than the fleet.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	errs := make([]error, len(f.Agents))
	for i, a := range f.Agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = f.StartAgent(ctx, a)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return f, err
	}
	if err := f.waitReady(ctx); err != nil {
		return f, err
	}
	log.Info("Fleet ready", "agents", len(f.Agents))
	return f, nil
}

// freeAddr returns a loopback address for a server the fleet starts: a
// port that was free a moment ago, that it has not handed out before, and
// that lies below the kernel's ephemeral range. A port of that range,
// chosen and released, can be taken as the source port of any outgoing
// connection before the server binds it (the replicas joining each other
// did exactly that); ports below it are only ever taken by servers.
func (f *Fleet) freeAddr() (string, error) {
	if f.ports == nil {
		f.ports = map[string]bool{}
	}
	lo := 32768 // Linux's default start of ip_local_port_range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if fields := strings.Fields(string(b)); len(fields) == 2 {
			if n, err := strconv.Atoi(fields[0]); err == nil && n > 12000 {
				lo = n
			}
		}
	}
	for range 1000 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(lo-10000+rand.IntN(10000)))
		if f.ports[addr] {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // in use
		}
		l.Close()
		f.ports[addr] = true
		return addr, nil
	}
	return "", errors.New("no free loopback port below the ephemeral range")
}

// asPrometheusUser returns the argv prefix that runs Prometheus as the
// user Debian's package runs it as, when the fleet runs as root and that
// user exists, and makes data (its storage) that user's. Besides being
// how it runs in production, it gives Prometheus its own share of inotify
// instances (128 per user by default): file_sd needs one, and without it
// discovers no target at all. A machine running many agents as root (this
// benchmark's fifty use three each) runs out.
func (f *Fleet) asPrometheusUser(data string) ([]string, error) {
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("prometheus")
	if err != nil {
		return nil, nil // not Debian's package; run as root
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(data, uid, gid); err != nil {
		return nil, err
	}
	// The fleet's directory must be reachable; what Prometheus reads in it
	// is world-readable, the secrets are not.
	if err := os.Chmod(f.dir, 0o755); err != nil {
		return nil, err
	}
	// setpriv execs in place, so the process's PID stays Prometheus'.
	return []string{"setpriv", "--reuid=" + u.Uid, "--regid=" + u.Gid, "--init-groups"}, nil
}

// check runs a server's own checker (amtool, promtool) on what the fleet
// wrote, so that a mistake shows as the checker's message rather than as
// a server that does not start.
func check(ctx context.Context, argv ...string) error {
	if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
	}
	return nil
}

func (f *Fleet) startAlertmanagers(ctx context.Context) error {
	cfg := filepath.Join(f.dir, "alertmanager.yml")
	if err := f.writeRouting(cfg); err != nil {
		return err
	}
	if err := check(ctx, "amtool", "check-config", cfg); err != nil {
		return err
	}
	for i := range Replicas {
		web, err := f.freeAddr()
		if err != nil {
			return err
		}
		gossip, err := f.freeAddr()
		if err != nil {
			return err
		}
		f.AMs = append(f.AMs, &Alertmanager{Name: fmt.Sprintf("am-%d", i+1), URL: "http://" + web, Gossip: gossip})
	}
	for _, am := range f.AMs {
		dir := filepath.Join(f.dir, am.Name)
		argv := []string{"prometheus-alertmanager", "--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + strings.TrimPrefix(am.URL, "http://"),
			"--cluster.listen-address=" + am.Gossip, "--cluster.advertise-address=" + am.Gossip,
			"--web.external-url=" + am.URL}
		for _, peer := range f.AMs {
			if peer != am {
				argv = append(argv, "--cluster.peer="+peer.Gossip)
			}
		}
		if f.opts.PeerTimeout > 0 {
			argv = append(argv, "--cluster.peer-timeout="+f.opts.PeerTimeout.String())
		}
		if f.opts.GossipInterval > 0 {
			argv = append(argv, "--cluster.gossip-interval="+f.opts.GossipInterval.String())
		}
		am.Proc = &Proc{Name: am.Name, Log: filepath.Join(dir, "alertmanager.log"), Argv: argv}
		if err := am.Proc.Start(); err != nil {
			return err
		}
	}
	return nil
}

func (f *Fleet) newAgent(host string) (*Agent, error) {
	addr, err := f.freeAddr()
	if err != nil {
		return nil, err
	}
	a := &Agent{Host: host, Addr: addr, Dir: filepath.Join(f.dir, "hosts", host)}
	if a.App, err = newApp(host); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(a.Dir, "log"), 0o755); err != nil {
		return nil, err
	}
	// The application's logs exist, empty, as on a quiet host.
	for _, l := range []string{"app.log", "error.log", "access.log"} {
		if err := os.WriteFile(filepath.Join(a.Dir, "log", l), nil, 0o644); err != nil {
			return nil, err
		}
	}
	cfg, err := f.agentConfig(a)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(a.Dir, "agent.yaml")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		return nil, err
	}
	a.Proc = &Proc{Name: host, Log: filepath.Join(a.Dir, "agent.log"), Argv: []string{f.opts.Bin, "run", "--config", path},
		// No system bus: the fleet watches no units.
		Env: []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + filepath.Join(a.Dir, "no-bus")}}
	return a, nil
}

// StartAgent starts (or restarts, on its state) one agent and waits until
// it is ready.
func (f *Fleet) StartAgent(ctx context.Context, a *Agent) error {
	if err := a.Proc.Start(); err != nil {
		return err
	}
	return waitFor(ctx, 60*time.Second, 50*time.Millisecond, a.Host+" ready", func() bool {
		return a.Proc.Running() && httpReady(ctx, "http://"+a.Addr+"/-/ready") == nil
	})
}

// writeTargets writes the file_sd targets: one file per host, labelled
// with its host name as packaging/prometheus/prometheus.yml asks.
func (f *Fleet) writeTargets() error {
	for _, a := range f.Agents {
		b, err := json.Marshal([]map[string]any{{"targets": []string{a.Addr}, "labels": map[string]string{"host": a.Host}}})
		if err != nil {
			return err
		}
		tmp := filepath.Join(f.targetsDir, "."+a.Host+".tmp")
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return err
		}
		// Renamed into place: Prometheus never reads half a file.
		if err := os.Rename(tmp, filepath.Join(f.targetsDir, a.Host+".json")); err != nil {
			return err
		}
	}
	return nil
}

// waitReady waits for the cluster to form and for Prometheus to have
// scraped every agent.
func (f *Fleet) waitReady(ctx context.Context) error {
	exited := func() *Alertmanager {
		for _, am := range f.AMs {
			if !am.Proc.Running() {
				return am
			}
		}
		return nil
	}
	for _, am := range f.AMs {
		err := waitFor(ctx, 60*time.Second, 200*time.Millisecond, am.Name+" ready with "+strconv.Itoa(Replicas)+" peers", func() bool {
			return exited() != nil || am.ClusterReady(ctx, Replicas) // an exit is reported below
		})
		if x := exited(); x != nil {
			return fmt.Errorf("%s exited; if its log says a port is in use, another process took it after the fleet chose it:\n%s", x.Name, x.Proc.Tail(5))
		}
		if err != nil {
			return fmt.Errorf("%w\n%s", err, am.Proc.Tail(20))
		}
	}
	// The e-mail channel too: a notification sent before the SMTP server
	// listens would be retried, and a test counting messages would wait
	// for a retry rather than a fault.
	if err := waitFor(ctx, 30*time.Second, 200*time.Millisecond, "the SMTP server's greeting", f.SMTP.ready); err != nil {
		return fmt.Errorf("%w\n%s", err, f.SMTP.Proc.Tail(20))
	}
	n := len(f.Agents)
	err := waitFor(ctx, 30*time.Second+3*f.opts.ScrapeInterval, 200*time.Millisecond, fmt.Sprintf("Prometheus to scrape %d agents", n), func() bool {
		if !f.Prometheus.Proc.Running() {
			return true
		}
		v, err := f.Query(ctx, fmt.Sprintf(`count(up{job=%q} == 1)`, Job))
		return err == nil && len(v) == 1 && v[0].Value == float64(n)
	})
	if !f.Prometheus.Proc.Running() {
		return fmt.Errorf("prometheus exited:\n%s", f.Prometheus.Proc.Tail(20))
	}
	if err != nil {
		return fmt.Errorf("%w; %s", err, f.targetHealth(ctx))
	}
	return nil
}

// targetHealth says what Prometheus knows of each agent target: its health
// and last scrape error, or why it could not tell.
func (f *Fleet) targetHealth(ctx context.Context) string {
	var r struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := getJSON(ctx, f.Prometheus.URL+"/api/v1/targets", &r); err != nil {
		return "targets unknown: " + err.Error()
	}
	var parts []string
	for _, t := range r.Data.ActiveTargets {
		parts = append(parts, fmt.Sprintf("%s %s %s", t.Labels["host"], t.Health, t.LastError))
	}
	return fmt.Sprintf("Prometheus has %d targets: %s", len(parts), strings.Join(parts, "; "))
}

// Close stops every process and server of the fleet, by PID.
func (f *Fleet) Close() {
	var wg sync.WaitGroup
	stop := func(p *Proc, grace time.Duration) {
		if p == nil {
			return
		}
		wg.Add(1)
		go func() { defer wg.Done(); p.Stop(grace) }()
	}
	for _, a := range f.Agents {
		stop(a.Proc, 10*time.Second)
	}
	wg.Wait()
	if f.Prometheus != nil {
		stop(f.Prometheus.Proc, 10*time.Second)
	}
	for _, am := range f.AMs {
		// A replica whose peers are gone waits 10s to leave the cluster;
		// nothing is left to tell.
		stop(am.Proc, 2*time.Second)
	}
	if f.SMTP != nil {
		stop(f.SMTP.Proc, 5*time.Second)
	}
	stop(f.NodeExporter, 5*time.Second)
	wg.Wait()
	for _, a := range f.Agents {
		a.App.close()
	}
	if f.Chat != nil {
		f.Chat.close()
	}
	if f.Webhook != nil {
		f.Webhook.close()
	}
}

// Sample is one element of a Prometheus instant vector.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query evaluates an instant PromQL query on the fleet's Prometheus.
func (f *Fleet) Query(ctx context.Context, q string) ([]Sample, error) {
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(ctx, f.Prometheus.URL+"/api/v1/query?query="+url.QueryEscape(q), &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, r.Error)
	}
	out := make([]Sample, 0, len(r.Data.Result))
	for _, x := range r.Data.Result {
		s, _ := x.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", q, x.Value[1], err)
		}
		out = append(out, Sample{Labels: x.Metric, Value: v})
	}
	return out, nil
}

// AMAlert is an alert as a replica's /api/v2/alerts lists it.
type AMAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Status      struct {
		State       string   `json:"state"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

// ClusterReady reports whether the replica has settled in a cluster of
// peers members (itself included).
func (am *Alertmanager) ClusterReady(ctx context.Context, peers int) bool {
	var st struct {
		Cluster struct {
			Status string `json:"status"`
			Peers  []any  `json:"peers"`
		} `json:"cluster"`
	}
	return getJSON(ctx, am.URL+"/api/v2/status", &st) == nil && st.Cluster.Status == "ready" && len(st.Cluster.Peers) == peers
}

// Settled waits until the channels have heard nothing for quiet and
// sender's gossip queue is empty: every notification-log entry it wrote
// (one per notification) has gone out to its peers. A replica that dies
// before its entries have spread leaves its peers unaware that it
// notified, and one of them notifies again: Alertmanager promises at
// least once, not exactly once.
func (f *Fleet) Settled(ctx context.Context, sender *Alertmanager, quiet, timeout time.Duration) error {
	return waitFor(ctx, timeout, 50*time.Millisecond, sender.Name+" settled", func() bool {
		ns, err := f.Notices()
		if err != nil {
			return false
		}
		for _, n := range ns {
			if time.Since(n.At) < quiet {
				return false
			}
		}
		q, err := sender.Metric(ctx, "alertmanager_cluster_messages_queued", nil)
		return err == nil && q == 0
	})
}

// Alerts returns the alerts the replica holds.
func (am *Alertmanager) Alerts(ctx context.Context) ([]AMAlert, error) {
	var out []AMAlert
	return out, getJSON(ctx, am.URL+"/api/v2/alerts", &out)
}

// Metric returns the sum of the replica's own series called name whose
// labels include want.
func (am *Alertmanager) Metric(ctx context.Context, name string, want map[string]string) (float64, error) {
	return ScrapeMetric(ctx, am.URL+"/metrics", name, want)
}

// ScrapeMetric fetches a Prometheus text exposition from url and returns
// the sum of the series called name whose labels include want.
func ScrapeMetric(ctx context.Context, url, name string, want map[string]string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		labels := ""
		if strings.HasPrefix(rest, "{") {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		}
		if !strings.HasPrefix(rest, " ") {
			continue // a longer name with the same prefix
		}
		ok := true
		for k, v := range want {
			ok = ok && strings.Contains(","+labels+",", ","+k+"=\""+v+"\",")
		}
		if ok {
			v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			if err == nil {
				sum += v
			}
		}
	}
	return sum, sc.Err()
}

// Notices returns every alert notification the stand-ins received: Slack,
// PagerDuty and e-mail.
func (f *Fleet) Notices() ([]Notice, error) {
	mails, err := f.SMTP.Notices()
	return append(f.Chat.Notices(), mails...), err
}

// Event is an event as an agent's file output wrote it.
type Event struct {
	WebhookEvent
	Labels map[string]string `json:"labels"`
}

// Events reads every event the agents produced, from their file outputs:
// what every other output must eventually receive.
func (f *Fleet) Events() ([]Event, error) {
	var out []Event
	for _, a := range f.Agents {
		fh, err := os.Open(a.EventsFile())
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(fh)
		for {
			var e Event
			if err := dec.Decode(&e); err == io.EOF {
				break
			} else if err != nil {
				fh.Close()
				return nil, fmt.Errorf("%s: %w", a.EventsFile(), err)
			}
			out = append(out, e)
		}
		fh.Close()
	}
	return out, nil
}

func getJSON(ctx context.Context, u string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Dir is the directory the fleet lives in.
func (f *Fleet) Dir() string { return f.dir }
