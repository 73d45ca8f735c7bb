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
	"net/url"
	"strconv"
	"strings"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"

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

// WebhookConfig is one generic JSON webhook output.
type WebhookConfig struct {
	// Name identifies the output in metrics, logs and the outbox; it
	// defaults to the URL's host. Renaming an output abandons its queue.
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// SecretFile holds the HMAC-SHA256 key for X-TokPulse-Signature.
	SecretFile yamlx.SecretFile `yaml:"secret_file"`
	// BearerTokenFile holds a token sent as "Authorization: Bearer".
	BearerTokenFile yamlx.SecretFile  `yaml:"bearer_token_file"`
	Headers         map[string]string `yaml:"headers"`
	TLS             TLSConfig         `yaml:"tls"`
	Timeout         yamlx.Duration    `yaml:"timeout"`
	// MaxBatch is the most events one POST carries.
	MaxBatch int `yaml:"max_batch"`
	// Templates override the message templates for this output only.
	Templates TemplateFiles `yaml:"templates"`
	// BodyTemplate, when set, replaces the JSON body by this Go template
	// rendered for one event (e.g. Slack's {"text": ...}); such an output
	// sends one event per POST.
	BodyTemplate string `yaml:"body_template"`
}

// UnmarshalYAML seeds a webhook's defaults before decoding it.
func (w *WebhookConfig) UnmarshalYAML(node *yaml.Node) error {
	type plain WebhookConfig
	*w = WebhookConfig{Timeout: yamlx.Duration(DefaultTimeout), MaxBatch: DefaultMaxBatch}
	return node.Decode((*plain)(w))
}

func (w *WebhookConfig) name() string {
	if w.Name != "" {
		return w.Name
	}
	if u, err := url.Parse(w.URL); err == nil && u.Host != "" {
		return "webhook:" + u.Host
	}
	return "webhook"
}

func (w *WebhookConfig) validate(v *yamlx.Checker, p string) {
	validHTTPURL(v, yamlx.Join(p, "url"), w.URL, "https://alerts.example.com/tokpulse")
	if w.Timeout.D() <= 0 {
		v.Errorf(yamlx.Join(p, "timeout"), "must be positive; write e.g. 10s")
	}
	if w.MaxBatch < 1 || w.MaxBatch > 1000 {
		v.Errorf(yamlx.Join(p, "max_batch"), "%d is out of range; write 1 to 1000 (default %d)", w.MaxBatch, DefaultMaxBatch)
	}
	v.CheckSecretFile(yamlx.Join(p, "secret_file"), w.SecretFile)
	v.CheckSecretFile(yamlx.Join(p, "bearer_token_file"), w.BearerTokenFile)
	validHeaders(v, yamlx.Join(p, "headers"), w.Headers)
	w.TLS.validate(v, yamlx.Join(p, "tls"))
	w.Templates.validate(v, yamlx.Join(p, "templates"))
	if w.BodyTemplate != "" {
		if _, err := parseBodyTemplate(w.BodyTemplate); err != nil {
			v.Errorf(yamlx.Join(p, "body_template"), "%v", err)
		}
	}
}

// build implements outputConfig.
func (w *WebhookConfig) build(env buildEnv) (Output, error) { return newWebhook(*w, env) }

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

func newWebhook(c WebhookConfig, env buildEnv) (*webhook, error) {
	w := &webhook{name: c.name(), url: c.URL, cfg: c, host: env.host, version: env.version, now: env.now, maxBatch: c.MaxBatch}
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
	if w.tmpl, err = loadTemplates(c.Templates, env.templates); err != nil {
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
