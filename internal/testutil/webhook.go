package testutil

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Webhook headers as docs/webhook.md names them. They are spelled out here
// rather than imported from notify so that the receiver checks the agent
// against the documented contract, not against its own constants.
const (
	HeaderEventID   = "X-TokPulse-Event-Id"
	HeaderTimestamp = "X-TokPulse-Timestamp"
	HeaderSignature = "X-TokPulse-Signature"
	HeaderSchema    = "X-TokPulse-Schema-Version"
)

// RepoRoot returns the module's root directory (where go.mod is), so that
// tests in any package find docs/ and packaging/.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// WebhookSchema compiles docs/webhook.schema.json, the contract every
// webhook body must meet.
func WebhookSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join(RepoRoot(t), "docs", "webhook.schema.json"))
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

// Sign computes the documented signature: "sha256=" + hex HMAC-SHA256 of
// "<timestamp>.<body>".
func Sign(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// WebhookRequest is one POST a Receiver saw.
type WebhookRequest struct {
	Header http.Header
	Body   []byte
	At     time.Time
}

// Receiver is a real HTTP webhook receiver (httptest). By default it
// answers 204; SetRespond changes that.
type Receiver struct {
	// URL is where the agent should POST.
	URL    string
	Server *httptest.Server
	Schema *jsonschema.Schema
	Secret string

	mu      sync.Mutex
	reqs    []WebhookRequest
	respond func(n int, w http.ResponseWriter, r *http.Request) bool
}

// NewReceiver starts a receiver; secret is the HMAC key it verifies
// signatures with ("" when the output signs nothing).
func NewReceiver(t testing.TB, secret string) *Receiver {
	t.Helper()
	rc := &Receiver{Schema: WebhookSchema(t), Secret: secret}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.Serve))
	rc.URL = rc.Server.URL
	t.Cleanup(rc.Server.Close)
	return rc
}

// Serve records a request and answers it; exported so that a test can
// serve the same receiver on a listener of its choosing.
func (rc *Receiver) Serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	n := len(rc.reqs)
	rc.reqs = append(rc.reqs, WebhookRequest{Header: r.Header.Clone(), Body: body, At: time.Now()})
	respond := rc.respond
	rc.mu.Unlock()
	if respond != nil && respond(n, w, r) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// SetRespond decides each answer from now on: f returns true when it has
// answered request number n itself.
func (rc *Receiver) SetRespond(f func(n int, w http.ResponseWriter, r *http.Request) bool) {
	rc.mu.Lock()
	rc.respond = f
	rc.mu.Unlock()
}

// Requests returns every request received so far, in arrival order.
func (rc *Receiver) Requests() []WebhookRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]WebhookRequest(nil), rc.reqs...)
}

// Check fails the test unless r meets docs/webhook.md: its body validates
// against the schema, the signature verifies with the receiver's secret,
// the event-id header lists the body's ids and the schema version is 1.
// It returns the raw events for the caller to decode into its own type.
func (rc *Receiver) Check(t testing.TB, r WebhookRequest) []json.RawMessage {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("webhook body is not JSON: %v\n%s", err, r.Body)
	}
	if err := rc.Schema.Validate(inst); err != nil {
		t.Fatalf("webhook body does not match docs/webhook.schema.json: %v\n%s", err, r.Body)
	}
	ts := r.Header.Get(HeaderTimestamp)
	if rc.Secret != "" {
		if got, want := r.Header.Get(HeaderSignature), Sign(rc.Secret, ts, r.Body); !hmac.Equal([]byte(got), []byte(want)) {
			t.Fatalf("%s %q, want %q (HMAC-SHA256 of timestamp.body)", HeaderSignature, got, want)
		}
	}
	var b struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(b.Events))
	for _, e := range b.Events {
		var id struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(e, &id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id.ID)
	}
	if got := r.Header.Get(HeaderEventID); got != strings.Join(ids, ",") {
		t.Fatalf("%s = %q, want %q", HeaderEventID, got, strings.Join(ids, ","))
	}
	if r.Header.Get(HeaderSchema) != "1" || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("webhook headers %v, want %s: 1 and Content-Type: application/json", r.Header, HeaderSchema)
	}
	return b.Events
}

// NewReceiverHandler is a receiver that is not serving yet, for a test
// that serves rc.Serve itself (over TLS, or on an address it frees and
// takes back to play an outage).
func NewReceiverHandler(t testing.TB, secret string) *Receiver {
	t.Helper()
	return &Receiver{Schema: WebhookSchema(t), Secret: secret}
}
