package notify

import (
	"net/http"
	"net/url"
	"strings"
	"time"

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

	// The outputs, one list per kind. A field here is the one line that
	// registers a kind of output: its element type (in the output's own
	// file) implements outputConfig, and outputConfigs finds it.
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
	for _, o := range c.outputConfigs(path) {
		if prev, dup := seen[o.cfg.name()]; dup {
			v.Errorf(yamlx.Join(o.path, "name"), "output name %q is already used by %s; give each output a unique name", o.cfg.name(), prev)
		}
		seen[o.cfg.name()] = o.path
		o.cfg.validate(v, o.path)
	}
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
