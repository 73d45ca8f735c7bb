package fleet

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// App is the stand-in TokPulse application of one host: the runbook's
// endpoints (/health, /ready, /live, /performance/status, /errors) on a
// loopback port, answering 200 unless a scenario breaks one of them.
type App struct {
	Host string
	Addr string

	srv    *http.Server
	mu     sync.Mutex
	status map[string]int
}

func newApp(host string) (*App, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &App{Host: host, Addr: l.Addr().String(), status: map[string]int{}}
	a.srv = &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = a.srv.Serve(l) }()
	return a, nil
}

// ServeHTTP answers the runbook's endpoints.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	code := a.status[r.URL.Path]
	a.mu.Unlock()
	if code == 0 {
		code = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if code == http.StatusOK {
		fmt.Fprintf(w, `{"status":"ok","host":%q}`, a.Host)
		return
	}
	fmt.Fprintf(w, `{"status":"error","host":%q}`, a.Host)
}

// Fail makes path answer 503 (true) or 200 again (false).
func (a *App) Fail(path string, failing bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if failing {
		a.status[path] = http.StatusServiceUnavailable
	} else {
		delete(a.status, path)
	}
}

func (a *App) close() { _ = a.srv.Close() }

// Notice is one alert as a channel delivered it: a Slack message, a
// PagerDuty event or an e-mail, parsed from the runbook's template text
// (packaging/alertmanager/tokpulse.tmpl). A notification that carries
// several alerts gives several notices.
type Notice struct {
	// Channel is "slack #incidents", "slack #alerts", "pagerduty" or
	// "email".
	Channel string
	// Status is "firing" or "resolved" (a PagerDuty trigger or resolve).
	Status string
	// Incident is the runbook's Incident ID: the agent's incident_id, or
	// Alertmanager's fingerprint for an alert of the central rules.
	Incident string
	Alert    string
	Host     string
	// Labels are the alert's labels besides alertname, severity, host,
	// instance and job, as the template lists them.
	Labels map[string]string
	At     time.Time
	// Text is the alert's block of the message, as the template rendered it.
	Text string
}

// Key is "channel status", e.g. "slack #incidents firing".
func (n Notice) Key() string { return n.Channel + " " + n.Status }

// CountByIncident counts notices per incident and Key.
func CountByIncident(ns []Notice) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, n := range ns {
		if out[n.Incident] == nil {
			out[n.Incident] = map[string]int{}
		}
		out[n.Incident][n.Key()]++
	}
	return out
}

// parseNotices reads the blocks tokpulse.text renders: a first line
// saying firing or resolved, then "Key: value" lines.
func parseNotices(channel, text string, at time.Time) []Notice {
	var out []Notice
	for _, block := range strings.Split(text, "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		n := Notice{Channel: channel, At: at, Text: strings.TrimSpace(block)}
		switch {
		case strings.Contains(lines[0], "INCIDENT ALERT"):
			n.Status = "firing"
		case strings.Contains(lines[0], "INCIDENT RESOLVED"):
			n.Status = "resolved"
		default:
			continue
		}
		for _, l := range lines[1:] {
			k, v, _ := strings.Cut(l, ": ")
			switch k {
			case "Incident ID":
				n.Incident = strings.TrimSpace(v)
			case "Alert":
				// "<alertname> on <host> (k=v, k=v)"
				// (cut before trimming: an alert without a name renders
				// as "Alert:  on <host>")
				var rest string
				n.Alert, rest, _ = strings.Cut(v, " on ")
				n.Alert = strings.TrimSpace(n.Alert)
				n.Host, rest, _ = strings.Cut(rest, "(")
				n.Host = strings.TrimSpace(n.Host)
				n.Labels = map[string]string{}
				for _, kv := range strings.Split(strings.TrimSuffix(rest, ")"), ", ") {
					if k, v, ok := strings.Cut(kv, "="); ok {
						n.Labels[k] = v
					}
				}
			}
		}
		out = append(out, n)
	}
	return out
}

// Chat is the stand-in for Slack's incoming webhooks and PagerDuty's Events
// API v2: one loopback server that records what Alertmanager posts, under
// /slack/<channel> and /v2/enqueue.
type Chat struct {
	URL string

	srv     *http.Server
	mu      sync.Mutex
	notices []Notice
	// pdIncident maps a PagerDuty dedup_key to the incident its trigger
	// announced, so that a resolve is attributed even without a payload.
	pdIncident map[string]Notice
	bad        []string
}

func newChat() (*Chat, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &Chat{URL: "http://" + l.Addr().String(), pdIncident: map[string]Notice{}}
	c.srv = &http.Server{Handler: c, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = c.srv.Serve(l) }()
	return c, nil
}

// slackMessage is what Alertmanager's slack_configs post.
type slackMessage struct {
	Channel     string `json:"channel"`
	Attachments []struct {
		Title string `json:"title"`
		Text  string `json:"text"`
	} `json:"attachments"`
}

// pagerDutyEvent is an Events API v2 event as Alertmanager sends it.
type pagerDutyEvent struct {
	RoutingKey  string `json:"routing_key"`
	EventAction string `json:"event_action"`
	DedupKey    string `json:"dedup_key"`
	Payload     *struct {
		Summary       string            `json:"summary"`
		Source        string            `json:"source"`
		Severity      string            `json:"severity"`
		CustomDetails map[string]string `json:"custom_details"`
	} `json:"payload"`
}

// ServeHTTP records one Slack message or PagerDuty event.
func (c *Chat) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "POST a JSON body", http.StatusBadRequest)
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/slack/"):
		var m slackMessage
		if err := json.Unmarshal(body, &m); err != nil || len(m.Attachments) == 0 {
			c.bad = append(c.bad, "slack: "+string(body))
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		// The channel is the webhook's (an incoming webhook posts to the
		// channel it was created for); the message's own must agree.
		ch := "#" + strings.TrimPrefix(r.URL.Path, "/slack/")
		if m.Channel != ch {
			c.bad = append(c.bad, fmt.Sprintf("slack: message for %s posted to the webhook of %s", m.Channel, ch))
		}
		for _, a := range m.Attachments {
			c.notices = append(c.notices, parseNotices("slack "+ch, a.Text, now)...)
		}
		_, _ = io.WriteString(w, "ok")
	case r.URL.Path == "/v2/enqueue":
		var e pagerDutyEvent
		if err := json.Unmarshal(body, &e); err != nil || e.RoutingKey == "" || e.DedupKey == "" {
			c.bad = append(c.bad, "pagerduty: "+string(body))
			http.Error(w, `{"status":"invalid event"}`, http.StatusBadRequest)
			return
		}
		var ns []Notice
		if e.Payload != nil {
			ns = parseNotices("pagerduty", e.Payload.CustomDetails["text"], now)
		}
		status := map[string]string{"trigger": "firing", "resolve": "resolved"}[e.EventAction]
		if len(ns) == 0 {
			if prev, ok := c.pdIncident[e.DedupKey]; ok {
				ns = []Notice{prev}
			} else {
				ns = []Notice{{Channel: "pagerduty"}}
			}
		}
		for i := range ns {
			ns[i].Status, ns[i].At = status, now
			if e.EventAction == "trigger" {
				c.pdIncident[e.DedupKey] = ns[i]
			}
		}
		c.notices = append(c.notices, ns...)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"status":"success","message":"Event processed","dedup_key":%q}`, e.DedupKey)
	default:
		http.NotFound(w, r)
	}
}

// Notices returns what was received so far.
func (c *Chat) Notices() []Notice {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Notice(nil), c.notices...)
}

// Bad returns the requests the stand-ins refused or found wrong.
func (c *Chat) Bad() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.bad...)
}

func (c *Chat) close() { _ = c.srv.Close() }

// WebhookEvent is the part of a webhook event (docs/webhook.md) the fleet
// looks at.
type WebhookEvent struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	IncidentID string `json:"incident_id"`
	AlertName  string `json:"alertname"`
	Severity   string `json:"severity"`
	Host       string `json:"host"`
}

// Webhook is the central webhook: it checks each POST's signature,
// de-duplicates events by id, and measures the load the fleet puts on it
// (open connections, requests in flight, requests per second). Down and
// Up take it away and bring it back on the same address.
type Webhook struct {
	URL  string
	addr string
	key  []byte

	mu        sync.Mutex
	srv       *http.Server
	load      *load // of the current server; Up starts a new one
	events    map[string]WebhookEvent
	seen      map[string]int // deliveries per event id
	requests  []Request
	conns     []time.Time // when each connection was opened
	badSigned int
}

// load counts one server's connections and requests. Each server has its
// own, so that connections Down closed cannot skew the counts after Up.
type load struct {
	open, inflight         int
	peakOpen, peakInflight int
}

// Request is one POST the webhook answered.
type Request struct {
	At     time.Time
	Events int
	Host   string
}

// newWebhook listens on addr, a port outside the ephemeral range: Up must
// get the same one back after Down.
func newWebhook(addr string, key []byte) (*Webhook, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	w := &Webhook{addr: l.Addr().String(), key: key, events: map[string]WebhookEvent{}, seen: map[string]int{}}
	w.URL = "http://" + w.addr + "/tokpulse"
	w.serve(l)
	return w, nil
}

func (w *Webhook) serve(l net.Listener) {
	ld := &load{}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w.mu.Lock()
			ld.inflight++
			ld.peakInflight = max(ld.peakInflight, ld.inflight)
			w.mu.Unlock()
			defer func() {
				w.mu.Lock()
				ld.inflight--
				w.mu.Unlock()
			}()
			w.ServeHTTP(rw, r)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			w.mu.Lock()
			defer w.mu.Unlock()
			switch s {
			case http.StateNew:
				w.conns = append(w.conns, time.Now())
				ld.open++
				ld.peakOpen = max(ld.peakOpen, ld.open)
			case http.StateClosed, http.StateHijacked:
				ld.open--
			}
		}}
	w.mu.Lock()
	w.srv, w.load = srv, ld
	w.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

// Down closes the listener and every connection: agents get "connection
// refused", as from a receiver whose process is gone.
func (w *Webhook) Down() {
	w.mu.Lock()
	srv := w.srv
	w.srv = nil
	w.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Up listens again on the same address; the load peaks start again from
// zero, so that they measure the recovery.
func (w *Webhook) Up() error {
	var l net.Listener
	var err error
	// The port was ours a moment ago; another process may have taken it
	// meanwhile, which only a retry can tell.
	for range 50 {
		if l, err = net.Listen("tcp", w.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("listening again on %s: %w", w.addr, err)
	}
	w.serve(l)
	return nil
}

// ServeHTTP checks and records one POST of events.
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		http.Error(rw, "reading the body failed", http.StatusBadRequest)
		return
	}
	ts := r.Header.Get("X-TokPulse-Timestamp")
	m := hmac.New(sha256.New, w.key)
	m.Write([]byte(ts + "."))
	m.Write(body)
	if !hmac.Equal([]byte("sha256="+hex.EncodeToString(m.Sum(nil))), []byte(r.Header.Get("X-TokPulse-Signature"))) {
		w.mu.Lock()
		w.badSigned++
		w.mu.Unlock()
		http.Error(rw, "bad signature", http.StatusUnauthorized)
		return
	}
	var b struct {
		Host   string         `json:"host"`
		Events []WebhookEvent `json:"events"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		http.Error(rw, "not a webhook body", http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	for _, e := range b.Events {
		w.seen[e.ID]++
		w.events[e.ID] = e
	}
	w.requests = append(w.requests, Request{At: time.Now(), Events: len(b.Events), Host: b.Host})
	w.mu.Unlock()
	rw.WriteHeader(http.StatusNoContent)
}

// WebhookStats is the webhook's view of the fleet.
type WebhookStats struct {
	// Events holds every distinct event received, by id; Deliveries counts
	// how often each id came (more than once is a duplicate the receiver
	// de-duplicated).
	Events     map[string]WebhookEvent
	Deliveries map[string]int
	Requests   []Request
	// Connections holds when each connection was opened.
	Connections []time.Time
	// PeakOpen and PeakInFlight are the most connections open and requests
	// being served at once since the last Up.
	PeakOpen, PeakInFlight int
	BadSignatures          int
}

// Stats returns a copy of what the webhook saw.
func (w *Webhook) Stats() WebhookStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := WebhookStats{Events: map[string]WebhookEvent{}, Deliveries: map[string]int{},
		Requests: append([]Request(nil), w.requests...), Connections: append([]time.Time(nil), w.conns...),
		BadSignatures: w.badSigned}
	if w.load != nil {
		s.PeakOpen, s.PeakInFlight = w.load.peakOpen, w.load.peakInflight
	}
	for k, v := range w.events {
		s.Events[k] = v
	}
	for k, v := range w.seen {
		s.Deliveries[k] = v
	}
	return s
}

func (w *Webhook) close() {
	w.Down()
}

// httpReady reports whether GET url answers 200.
func httpReady(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
