package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// The headers a webhook request carries (docs/webhook.md).
const (
	HeaderEventID   = "X-TokPulse-Event-Id"
	HeaderTimestamp = "X-TokPulse-Timestamp"
	HeaderSignature = "X-TokPulse-Signature"
	HeaderSchema    = "X-TokPulse-Schema-Version"
)

// Body is the JSON body of a webhook POST (schema version 1).
type Body struct {
	Version      string        `json:"version"`
	Host         string        `json:"host"`
	AgentVersion string        `json:"agent_version"`
	SentAt       time.Time     `json:"sent_at"`
	Events       []alert.Event `json:"events"`
}

// webhook posts events as JSON (or through a body template) to one URL.
type webhook struct {
	name     string
	url      string
	cfg      WebhookConfig
	client   *http.Client
	secret   yamlx.Secret
	token    yamlx.Secret
	tmpl     *templates
	body     *template.Template
	host     string
	version  string
	now      func() time.Time
	maxBatch int
}

func newWebhook(c WebhookConfig, global TemplateFiles, host, version string, now func() time.Time) (*webhook, error) {
	w := &webhook{name: c.name(), url: c.URL, cfg: c, host: host, version: version, now: now, maxBatch: c.MaxBatch}
	var err error
	if w.client, err = newHTTPClient(c.TLS, c.Timeout.D()); err != nil {
		return nil, err
	}
	if c.SecretFile != "" {
		if w.secret, err = c.SecretFile.Read(); err != nil {
			return nil, err
		}
	}
	if c.BearerTokenFile != "" {
		if w.token, err = c.BearerTokenFile.Read(); err != nil {
			return nil, err
		}
	}
	if w.tmpl, err = loadTemplates(c.Templates, global); err != nil {
		return nil, err
	}
	if c.BodyTemplate != "" {
		if w.body, err = parseBodyTemplate(c.BodyTemplate); err != nil {
			return nil, err
		}
		// A chat message is one event; several would need a list the
		// template cannot know how to join.
		w.maxBatch = 1
	}
	return w, nil
}

func (w *webhook) Name() string  { return w.name }
func (w *webhook) MaxBatch() int { return w.maxBatch }

// Sign returns the X-TokPulse-Signature value for body sent at timestamp:
// "sha256=" and the hex HMAC-SHA256 of "timestamp.body" under secret.
func Sign(secret string, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (w *webhook) render(events []alert.Event) ([]byte, error) {
	for i := range events {
		events[i].Text = w.tmpl.render(&events[i])
	}
	if w.body != nil {
		var b bytes.Buffer
		if err := w.body.Execute(&b, &events[0]); err != nil {
			return nil, fmt.Errorf("rendering body_template: %w", err)
		}
		return b.Bytes(), nil
	}
	return json.Marshal(Body{Version: alert.SchemaVersion, Host: w.host, AgentVersion: w.version, SentAt: w.now().UTC(), Events: events})
}

// Send implements Output.
func (w *webhook) Send(ctx context.Context, events []alert.Event) error {
	body, err := w.render(events)
	if err != nil {
		return &SendError{Err: err, Permanent: true}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return &SendError{Err: err, Permanent: true}
	}
	ids := make([]string, len(events))
	for i := range events {
		ids[i] = events[i].ID
	}
	ts := strconv.FormatInt(w.now().Unix(), 10)
	for k, v := range w.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tokpulse-agent/"+w.version)
	req.Header.Set(HeaderEventID, strings.Join(ids, ","))
	req.Header.Set(HeaderTimestamp, ts)
	if w.body == nil {
		req.Header.Set(HeaderSchema, alert.SchemaVersion)
	}
	if w.secret != "" {
		req.Header.Set(HeaderSignature, Sign(w.secret.Reveal(), ts, body))
	}
	if w.token != "" {
		req.Header.Set("Authorization", "Bearer "+w.token.Reveal())
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return &SendError{Err: postError(w.url, err)}
	}
	defer resp.Body.Close()
	defer func() { _, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) }()
	if err := classify(resp, w.now()); err != nil {
		se := err.(*SendError)
		se.Err = postError(w.url, se.Err)
		return se
	}
	return nil
}
