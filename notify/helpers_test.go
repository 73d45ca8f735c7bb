package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/state"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// schema compiles docs/webhook.schema.json, the contract every body must
// meet.
func schema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("../docs/webhook.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("webhook.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("webhook.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// request is one POST a receiver saw.
type request struct {
	Header http.Header
	Body   []byte
	At     time.Time
}

// receiver is a real HTTP receiver. respond decides each answer (nil: 200).
type receiver struct {
	t       testing.TB
	srv     *httptest.Server
	schema  *jsonschema.Schema
	secret  string
	mu      sync.Mutex
	reqs    []request
	respond func(n int, w http.ResponseWriter, r *http.Request) bool // true: handled
}

func newReceiver(t testing.TB, secret string) *receiver {
	rc := &receiver{t: t, schema: schema(t), secret: secret}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	n := len(rc.reqs)
	rc.reqs = append(rc.reqs, request{Header: r.Header.Clone(), Body: body, At: time.Now()})
	respond := rc.respond
	rc.mu.Unlock()
	if respond != nil && respond(n, w, r) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) setRespond(f func(n int, w http.ResponseWriter, r *http.Request) bool) {
	rc.mu.Lock()
	rc.respond = f
	rc.mu.Unlock()
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

// checkBody verifies a request's signature, headers and schema and returns
// its events.
func checkBody(t testing.TB, s *jsonschema.Schema, secret string, r request) []Event {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.Body)
	}
	if err := s.Validate(inst); err != nil {
		t.Fatalf("body does not match docs/webhook.schema.json: %v\n%s", err, r.Body)
	}
	ts := r.Header.Get(HeaderTimestamp)
	if secret != "" {
		if got, want := r.Header.Get(HeaderSignature), Sign(secret, ts, r.Body); got != want {
			t.Fatalf("signature %q, want %q", got, want)
		}
	}
	var b Body
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range b.Events {
		ids = append(ids, e.ID)
	}
	if got := r.Header.Get(HeaderEventID); got != joinIDs(ids) {
		t.Fatalf("%s = %q, want %q", HeaderEventID, got, joinIDs(ids))
	}
	if r.Header.Get(HeaderSchema) != SchemaVersion || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", r.Header)
	}
	return b.Events
}

func joinIDs(ids []string) string {
	out := ""
	for i, id := range ids {
		if i > 0 {
			out += ","
		}
		out += id
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
		out = append(out, checkBody(rc.t, rc.schema, rc.secret, r)...)
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

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePort returns a loopback address nothing listens on (connections to it
// are refused).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// listenRetry listens on addr, retrying briefly: the port was just freed.
func listenRetry(t testing.TB, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	eventually(t, 5*time.Second, "listening on "+addr, func() bool {
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
	h.srv = &http.Server{Handler: http.HandlerFunc(rc.serve)}
	go func() { _ = h.srv.Serve(ln) }()
}

func (h *httpServer) close() { _ = h.srv.Close() }
