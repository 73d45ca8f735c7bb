package notify

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/state"
	"github.com/tokpulse/tokpulse-agent/internal/testutil"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// receiver is the shared webhook receiver (internal/testutil: signature,
// headers and docs/webhook.schema.json checked on every body) under the
// names these tests use.
type receiver struct {
	*testutil.Receiver
	t   testing.TB
	srv *httptest.Server // nil for a receiver a test serves itself
}

// newReceiver starts a receiver that verifies signatures with secret.
func newReceiver(t testing.TB, secret string) *receiver {
	r := testutil.NewReceiver(t, secret)
	return &receiver{Receiver: r, t: t, srv: r.Server}
}

// newUnstartedReceiver is a receiver that checks no signature, for a test
// that serves its handler (rc.Serve) on a listener of its own.
func newUnstartedReceiver(t testing.TB) *receiver {
	return &receiver{Receiver: testutil.NewReceiverHandler(t, ""), t: t}
}

func (rc *receiver) setRespond(f func(n int, w http.ResponseWriter, r *http.Request) bool) {
	rc.SetRespond(f)
}

func (rc *receiver) requests() []testutil.WebhookRequest { return rc.Requests() }

// check verifies a request (schema, signature, headers) and returns its
// events.
func (rc *receiver) check(r testutil.WebhookRequest) []alert.Event {
	rc.t.Helper()
	var out []alert.Event
	for _, raw := range rc.Check(rc.t, r) {
		var e alert.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			rc.t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// events returns every event the receiver got, checked, in arrival order,
// from the requests it answered with 2xx (those it refused are retried).
func (rc *receiver) events(accepted func(n int) bool) []alert.Event {
	var out []alert.Event
	for i, r := range rc.requests() {
		if accepted != nil && !accepted(i) {
			continue
		}
		out = append(out, rc.check(r)...)
	}
	return out
}

// testPolicies are the runbook's, without group_wait unless a test sets it.
func testPolicies() alert.Policies {
	p := alert.DefaultPolicies()
	p.P3.GroupWait, p.P4.GroupWait = 0, 0
	return p
}

func testConfig() Config {
	c := DefaultConfig()
	c.Heartbeat = 0
	c.Retry = RetryConfig{InitialInterval: yamlx.Duration(10 * time.Millisecond), MaxInterval: yamlx.Duration(100 * time.Millisecond)}
	return c
}

func webhookConfig(url, secretFile string) WebhookConfig {
	return WebhookConfig{Name: "central", URL: url, SecretFile: yamlx.SecretFile(secretFile),
		Timeout: yamlx.Duration(2 * time.Second), MaxBatch: DefaultMaxBatch}
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := dir + "/" + name
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func openStore(t testing.TB, dir string) *state.Store {
	t.Helper()
	s, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startManager builds and starts a Manager on a store in dir, fed by an
// incident tracker (see feed); the cleanup stops it and closes the store.
func startManager(t testing.TB, dir string, cfg Config, pol alert.Policies, opts Options) *feed {
	t.Helper()
	if opts.Store == nil {
		opts.Store = openStore(t, dir)
	}
	if opts.Host == "" {
		opts.Host = "web-1"
	}
	if opts.Version == "" {
		opts.Version = "1.2.3"
	}
	if testing.Verbose() && opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	f, err := newFeed(cfg, pol, opts)
	if err != nil {
		t.Fatal(err)
	}
	m := f.Manager
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		m.Stop(sctx)
		scancel()
		cancel()
		_ = opts.Store.Close()
	})
	return f
}

// feed is a Manager with the incident tracker in front of it, as the
// agent wires them: tests hand it alerts as the rule engine's results (a
// firing alert is returned by its rule's expression, a resolved one is
// not), and the tracker decides the events. The tracker keeps its
// incidents in the Manager's state file.
type feed struct {
	*Manager
	tr       *incident.Tracker
	now      time.Time
	evidence map[string][]evidence.Section // by alertname
}

// newFeed builds a Manager for cfg and its tracker with policies pol.
func newFeed(cfg Config, pol alert.Policies, opts Options) (*feed, error) {
	f := &feed{evidence: map[string][]evidence.Section{}}
	opts.Firing = func() []alert.Event { return f.tr.Firing() }
	m, err := New(cfg, opts)
	if err != nil {
		return nil, err
	}
	f.Manager = m
	f.tr, err = incident.New(incident.Options{State: opts.Store, Delivery: m, Policies: pol, Host: opts.Host,
		Version: opts.Version, Evidence: f, Now: func() time.Time { return f.now }, RunbookURL: testRunbookURL})
	return f, err
}

// Alerts observes each alert's rule at now (firing alerts present,
// resolved ones absent) and commits, as one evaluation of the agent.
func (f *feed) Alerts(ctx context.Context, now time.Time, as []alert.Alert) error {
	f.now = now
	for _, a := range as {
		r := alert.Rule{Group: "test", Name: a.Name, Severity: a.Severity}
		var samples []alert.Sample
		if a.State == alert.StateFiring {
			samples = append(samples, alert.Sample{Labels: labels.FromMap(a.Labels), Annotations: a.Annotations, Value: a.Value})
			if a.Evidence != nil {
				f.evidence[a.Name] = a.Evidence
			}
		}
		f.tr.Observe(now, r, samples, true)
	}
	return f.tr.Commit(ctx, now)
}

// Snapshot implements incident.EvidenceSource with the alerts' own
// evidence.
func (f *feed) Snapshot(_ context.Context, subjects []evidence.Subject) [][]evidence.Section {
	out := make([][]evidence.Section, len(subjects))
	for i, s := range subjects {
		out[i] = f.evidence[s.Labels["alertname"]]
	}
	return out
}

// fp is the fingerprint of a test alert.
func fp(a alert.Alert) string { return alert.Fingerprint(labels.FromMap(a.Labels)) }

// firing returns a firing alert named name of severity sev, active since
// at.
func firing(name string, sev alert.Severity, at time.Time) alert.Alert {
	return alert.Alert{
		Name: name, State: alert.StateFiring, Severity: sev,
		Labels:      map[string]string{"alertname": name, "severity": string(sev), "probe": "health"},
		Annotations: map[string]string{"summary": name + " is failing", "description": "the " + name + " check failed", "runbook": "Database Connection Issues"},
		Value:       1, ActiveAt: at, FiredAt: at, ResponseDeadline: at.Add(15 * time.Minute),
	}
}

func resolved(a alert.Alert, at time.Time) alert.Alert {
	a.State, a.ResolvedAt = alert.StateResolved, at
	return a
}

// event is the initial event of a firing test alert, as the tracker
// would produce it on host at.
func event(host string, a alert.Alert, at time.Time) alert.Event {
	f := fp(a)
	started, deadline := at, at.Add(15*time.Minute)
	return alert.Event{
		ID: alert.EventID(host, f, at, alert.KindInitial, 0), Kind: alert.KindInitial, Status: "firing",
		IncidentID: alert.IncidentID(host, f, at), Fingerprint: f, AlertName: a.Name, Severity: string(a.Severity),
		Summary: a.Annotations["summary"], Labels: a.Labels, Annotations: a.Annotations,
		StartedAt: &started, ResponseDeadline: &deadline, Host: host, AgentVersion: "1.2.3", CreatedAt: at.UTC(),
	}
}

// listenRetry listens on addr, retrying briefly: the port was just freed.
func listenRetry(t testing.TB, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	testutil.Eventually(t, 5*time.Second, "listening on "+addr, func() bool {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err == nil
	})
	return ln
}

// httpServer serves a receiver on a given listener (to bring a "down"
// receiver back on its old address).
type httpServer struct{ srv *http.Server }

func (h *httpServer) start(ln net.Listener, rc *receiver) {
	h.srv = &http.Server{Handler: http.HandlerFunc(rc.Serve)}
	go func() { _ = h.srv.Serve(ln) }()
}

func (h *httpServer) close() { _ = h.srv.Close() }

// testRunbookURL is notify.runbook_url of the tests' trackers.
const testRunbookURL = "https://git.example.com/ops/INCIDENT_RUNBOOK.md"
