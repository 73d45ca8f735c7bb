package notify

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/safefile"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// Config is the "notify:" section of agent.yaml. Every key is documented in
// docs/configuration.md (section "notify").
type Config struct {
	// Heartbeat is how often a heartbeat event is sent to every output, so
	// that the central side can tell a silent host from a healthy one; 0
	// turns heartbeats off.
	Heartbeat yamlx.Duration `yaml:"heartbeat"`
	// ExternalURL is the agent's own URL as receivers should see it; it
	// builds Alertmanager's generatorURL. Empty: http://<web.listen>.
	ExternalURL string `yaml:"external_url"`
	// RunbookURL is where operators read the incident runbook
	// (INCIDENT_RUNBOOK.md, e.g. on GitHub); every alert links to it with
	// the anchor of the section its rule names. Empty: texts name the
	// section without a link.
	RunbookURL string `yaml:"runbook_url"`
	// Outbox bounds the durable queue of undelivered events.
	Outbox OutboxConfig `yaml:"outbox"`
	// Retry shapes the backoff between failed deliveries.
	Retry RetryConfig `yaml:"retry"`
	// Templates override the runbook's message templates for every output.
	Templates TemplateFiles `yaml:"templates"`

	Webhooks      yamlx.List[WebhookConfig]      `yaml:"webhooks"`
	Alertmanagers yamlx.List[AlertmanagerConfig] `yaml:"alertmanagers"`
	Files         yamlx.List[FileConfig]         `yaml:"files"`
}

// OutboxConfig bounds the outbox. When either bound is exceeded the oldest
// events of the lowest severity are dropped first (and counted).
type OutboxConfig struct {
	MaxEvents int   `yaml:"max_events" json:"max_events"`
	MaxBytes  int64 `yaml:"max_bytes" json:"max_bytes"`
}

// RetryConfig is the capped exponential backoff (with jitter) between
// delivery attempts of one output.
type RetryConfig struct {
	InitialInterval yamlx.Duration `yaml:"initial_interval"`
	MaxInterval     yamlx.Duration `yaml:"max_interval"`
}

// TemplateFiles name Go text/template files that replace the default
// (runbook) messages. Empty keys keep the default.
type TemplateFiles struct {
	Initial   string `yaml:"initial_file"`
	Update    string `yaml:"update_file"`
	Resolved  string `yaml:"resolved_file"`
	Heartbeat string `yaml:"heartbeat_file"`
	// Action is the text of an automated action's event (docs/actions.md).
	Action string `yaml:"action_file"`
}

// TLSConfig configures the client side of TLS for an output.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
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

// AlertmanagerConfig is one Alertmanager cluster: every URL is one replica
// and every alert is posted to all of them, as Prometheus does.
type AlertmanagerConfig struct {
	Name string   `yaml:"name"`
	URLs []string `yaml:"urls"`
	// ResendInterval is how often active alerts are re-posted; Alertmanager
	// resolves an alert that is not re-posted, so keep it within 30s-3m.
	ResendInterval  yamlx.Duration    `yaml:"resend_interval"`
	Timeout         yamlx.Duration    `yaml:"timeout"`
	BearerTokenFile yamlx.SecretFile  `yaml:"bearer_token_file"`
	Headers         map[string]string `yaml:"headers"`
	TLS             TLSConfig         `yaml:"tls"`
	MaxBatch        int               `yaml:"max_batch"`
}

// FileConfig writes events as JSON lines to a file, or to stdout with "-".
type FileConfig struct {
	Name      string        `yaml:"name"`
	Path      string        `yaml:"path"`
	Templates TemplateFiles `yaml:"templates"`
}

// Defaults.
const (
	DefaultHeartbeat      = 5 * time.Minute
	DefaultMaxEvents      = 10000
	DefaultMaxBytes       = 64 << 20
	DefaultTimeout        = 10 * time.Second
	DefaultMaxBatch       = 100
	DefaultResendInterval = time.Minute
)

// DefaultConfig returns the notify section used where agent.yaml is silent:
// no outputs, heartbeats every 5 minutes.
func DefaultConfig() Config {
	return Config{
		Heartbeat: yamlx.Duration(DefaultHeartbeat),
		Outbox:    OutboxConfig{MaxEvents: DefaultMaxEvents, MaxBytes: DefaultMaxBytes},
		Retry:     RetryConfig{InitialInterval: yamlx.Duration(time.Second), MaxInterval: yamlx.Duration(5 * time.Minute)},
	}
}

// UnmarshalYAML seeds a webhook's defaults before decoding it.
func (w *WebhookConfig) UnmarshalYAML(node *yaml.Node) error {
	type plain WebhookConfig
	*w = WebhookConfig{Timeout: yamlx.Duration(DefaultTimeout), MaxBatch: DefaultMaxBatch}
	return node.Decode((*plain)(w))
}

// UnmarshalYAML seeds an Alertmanager cluster's defaults before decoding it.
func (a *AlertmanagerConfig) UnmarshalYAML(node *yaml.Node) error {
	type plain AlertmanagerConfig
	*a = AlertmanagerConfig{Timeout: yamlx.Duration(DefaultTimeout), MaxBatch: DefaultMaxBatch,
		ResendInterval: yamlx.Duration(DefaultResendInterval)}
	return node.Decode((*plain)(a))
}

// OutputNames lists the names of every configured output, in order.
func (c *Config) OutputNames() []string {
	var n []string
	for _, w := range c.Webhooks {
		n = append(n, w.name())
	}
	for _, a := range c.Alertmanagers {
		n = append(n, a.name())
	}
	for _, f := range c.Files {
		n = append(n, f.name())
	}
	return n
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

func (a *AlertmanagerConfig) name() string {
	if a.Name != "" {
		return a.Name
	}
	return "alertmanager"
}

func (f *FileConfig) name() string {
	if f.Name != "" {
		return f.Name
	}
	if f.Path == "-" {
		return "stdout"
	}
	return "file:" + f.Path
}

// Validate implements yamlx.Validator.
func (c *Config) Validate(v *yamlx.Checker, path string) {
	if c.Heartbeat.D() != 0 && c.Heartbeat.D() < 10*time.Second {
		v.Errorf(yamlx.Join(path, "heartbeat"), "%s is too often; write at least 10s (default 5m), or 0 to turn heartbeats off", c.Heartbeat)
	}
	if c.ExternalURL != "" {
		if u, err := url.Parse(c.ExternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.Errorf(yamlx.Join(path, "external_url"), "%q is not an http(s) URL; write e.g. http://host.example.com:9847", c.ExternalURL)
		}
	}
	if c.RunbookURL != "" {
		if u, err := url.Parse(c.RunbookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
			v.Errorf(yamlx.Join(path, "runbook_url"), "%q is not an http(s) URL without #anchor; write the runbook's address, e.g. https://github.com/example/tokpulse/blob/main/docs/INCIDENT_RUNBOOK.md (each alert adds its section's anchor)", c.RunbookURL)
		}
	}
	if c.Outbox.MaxEvents < 100 {
		v.Errorf(yamlx.Join(path, "outbox.max_events"), "%d is too small; write at least 100 (default %d)", c.Outbox.MaxEvents, DefaultMaxEvents)
	}
	if c.Outbox.MaxBytes < 1<<20 {
		v.Errorf(yamlx.Join(path, "outbox.max_bytes"), "%d is too small; write at least 1048576 (1 MiB; default %d)", c.Outbox.MaxBytes, DefaultMaxBytes)
	}
	if c.Retry.InitialInterval.D() < 10*time.Millisecond {
		v.Errorf(yamlx.Join(path, "retry.initial_interval"), "%s is too short; write at least 10ms (default 1s)", c.Retry.InitialInterval)
	}
	if c.Retry.MaxInterval.D() < c.Retry.InitialInterval.D() {
		v.Errorf(yamlx.Join(path, "retry.max_interval"), "%s is shorter than retry.initial_interval; write at least %s (default 5m)", c.Retry.MaxInterval, c.Retry.InitialInterval)
	}
	c.Templates.validate(v, yamlx.Join(path, "templates"))

	seen := map[string]string{}
	unique := func(name, p string) {
		if prev, dup := seen[name]; dup {
			v.Errorf(yamlx.Join(p, "name"), "output name %q is already used by %s; give each output a unique name", name, prev)
		}
		seen[name] = p
	}
	for i := range c.Webhooks {
		w := &c.Webhooks[i]
		p := yamlx.Index(yamlx.Join(path, "webhooks"), i)
		unique(w.name(), p)
		w.validate(v, p)
	}
	for i := range c.Alertmanagers {
		a := &c.Alertmanagers[i]
		p := yamlx.Index(yamlx.Join(path, "alertmanagers"), i)
		unique(a.name(), p)
		a.validate(v, p)
	}
	for i := range c.Files {
		f := &c.Files[i]
		p := yamlx.Index(yamlx.Join(path, "files"), i)
		unique(f.name(), p)
		if f.Path == "" {
			v.Errorf(yamlx.Join(p, "path"), "must be set; write a file path such as /var/log/tokpulse-agent/alerts.jsonl, or \"-\" for stdout")
		}
		f.Templates.validate(v, yamlx.Join(p, "templates"))
	}
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

func (a *AlertmanagerConfig) validate(v *yamlx.Checker, p string) {
	if len(a.URLs) == 0 {
		v.Errorf(yamlx.Join(p, "urls"), "list at least one Alertmanager base URL, e.g. [http://alertmanager-1:9093, http://alertmanager-2:9093]")
	}
	for i, u := range a.URLs {
		validHTTPURL(v, yamlx.Index(yamlx.Join(p, "urls"), i), u, "http://alertmanager:9093")
	}
	if d := a.ResendInterval.D(); d < 30*time.Second || d > 3*time.Minute {
		v.Errorf(yamlx.Join(p, "resend_interval"), "%s is outside 30s-3m; Alertmanager resolves alerts it does not hear about; write e.g. 1m", a.ResendInterval)
	}
	if a.Timeout.D() <= 0 {
		v.Errorf(yamlx.Join(p, "timeout"), "must be positive; write e.g. 10s")
	}
	if a.MaxBatch < 1 || a.MaxBatch > 1000 {
		v.Errorf(yamlx.Join(p, "max_batch"), "%d is out of range; write 1 to 1000 (default %d)", a.MaxBatch, DefaultMaxBatch)
	}
	v.CheckSecretFile(yamlx.Join(p, "bearer_token_file"), a.BearerTokenFile)
	validHeaders(v, yamlx.Join(p, "headers"), a.Headers)
	a.TLS.validate(v, yamlx.Join(p, "tls"))
}

func (t *TemplateFiles) validate(v *yamlx.Checker, p string) {
	for key, f := range map[string]string{"initial_file": t.Initial, "update_file": t.Update, "resolved_file": t.Resolved, "heartbeat_file": t.Heartbeat} {
		if f == "" {
			continue
		}
		data, err := readTemplate(f)
		if err != nil {
			v.Errorf(yamlx.Join(p, key), "cannot read template: %v (write the path of a Go text/template file)", err)
			continue
		}
		if _, err := parseTextTemplate(key, string(data)); err != nil {
			v.Errorf(yamlx.Join(p, key), "%v", err)
		}
	}
}

func (t *TLSConfig) validate(v *yamlx.Checker, p string) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.Errorf(p, "cert_file and key_file go together; set both for a client certificate, or neither")
		return
	}
	// The files are read and parsed as the output will read them, so that
	// check refuses a CA file without a certificate, which would stop the
	// agent from starting.
	if t.CAFile != "" {
		if _, err := safefile.CertPool(t.CAFile); err != nil {
			v.Errorf(yamlx.Join(p, "ca_file"), "%v", err)
		}
	}
	if t.CertFile != "" {
		if _, err := safefile.KeyPair(t.CertFile, t.KeyFile); err != nil {
			v.Errorf(yamlx.Join(p, "cert_file"), "%v", err)
		}
	}
}

func validHTTPURL(v *yamlx.Checker, p, raw, example string) {
	u, err := url.Parse(raw)
	if raw == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.Errorf(p, "%s is not an http(s) URL; write e.g. %s", evidence.HostOnlyURL(raw), example)
		return
	}
	if u.User != nil {
		v.Errorf(p, "credentials in the URL would be logged; remove them and use bearer_token_file")
	}
}

func validHeaders(v *yamlx.Checker, p string, h map[string]string) {
	for k := range h {
		ck := http.CanonicalHeaderKey(k)
		if ck == "Authorization" || strings.HasPrefix(ck, "X-Tokpulse-") || ck == "Content-Type" {
			v.Errorf(yamlx.Join(p, k), "header %s is set by the agent; use bearer_token_file for Authorization", k)
		}
	}
}
