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

	"github.com/tokpulse/tokpulse-agent/internal/alert"
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
func (rc *receiver) check(r testutil.WebhookRequest) []Event {
	rc.t.Helper()
	var out []Event
	for _, raw := range rc.Check(rc.t, r) {
		var e Event
		if err := json.Unmarshal(raw, &e); err != nil {
			rc.t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// events returns every event the receiver got, checked, in arrival order,
// from the requests it answered with 2xx (those it refused are retried).
func (rc *receiver) events(accepted func(n int) bool) []Event {
	var out []Event
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

// startManager builds and starts a Manager on a store in dir; the cleanup
// stops it and closes the store.
func startManager(t testing.TB, dir string, cfg Config, pol alert.Policies, opts Options) *Manager {
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
	m, err := New(cfg, pol, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		m.Stop(sctx)
		scancel()
		cancel()
		_ = opts.Store.Close()
	})
	return m
}

// firing returns a firing alert named name of severity sev, active since
// at.
func firing(name string, sev alert.Severity, at time.Time) alert.Alert {
	return alert.Alert{
		Fingerprint: "fp-" + name, Name: name, State: alert.StateFiring, Severity: sev,
		Labels:      map[string]string{"alertname": name, "severity": string(sev), "probe": "health"},
		Annotations: map[string]string{"summary": name + " is failing", "description": "the " + name + " check failed", "runbook": "Database Connection Issues"},
		Value:       1, ActiveAt: at, FiredAt: at, ResponseDeadline: at.Add(15 * time.Minute),
	}
}

func resolved(a alert.Alert, at time.Time) alert.Alert {
	a.State, a.ResolvedAt = alert.StateResolved, at
	return a
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
