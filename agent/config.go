package agent

import (
	_ "embed"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/actions"
	"github.com/tokpulse/tokpulse-agent/collectors"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/safefile"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
	"github.com/tokpulse/tokpulse-agent/notify"
)

// defaultConfigYAML is the configuration used when no --config is given. It
// must work on any Linux host, so it only enables what every host has.
//
//go:embed default.yaml
var defaultConfigYAML []byte

// DefaultConfigName is how the embedded configuration is named in messages.
const DefaultConfigName = "<embedded default config>"

// DefaultListen is the loopback address of the HTTP server. 9847 lies in the
// Prometheus exporter range (9100-9999), away from the common exporters'
// ports; the range's registry is fully allocated, so web.listen moves it.
const DefaultListen = "127.0.0.1:9847"

// Config is the whole of agent.yaml. Defaults come from Default, and nowhere
// else; see docs/configuration.md for every key.
type Config struct {
	Agent             AgentConfig `yaml:"agent"`
	Web               WebConfig   `yaml:"web"`
	collectors.Config `yaml:",inline"`
	// RuleFiles are globs of Prometheus-format rule files; relative ones
	// are relative to the configuration file's directory.
	RuleFiles []string `yaml:"rule_files"`
	// Severities is the runbook's policy per incident class.
	Severities alert.Policies `yaml:"severities"`
	// Notify is where alerts go (webhooks, Alertmanager, files).
	Notify notify.Config `yaml:"notify"`
	// Actions are the guarded automated responses to alerts (restart a
	// unit, run a command); none by default. See docs/actions.md.
	Actions yamlx.List[actions.Config] `yaml:"actions"`

	// warnings are what validation found worth changing but not wrong
	// (a secret file others can read); see Warnings.
	warnings yamlx.Problems
}

// Warnings returns what validation found worth changing but not wrong, each
// with its file, line and key; check prints them and run logs them.
func (c *Config) Warnings() yamlx.Problems { return c.warnings }

// AgentConfig is the "agent:" section: identity, schedule, host paths, logging.
type AgentConfig struct {
	// Hostname names this host in alerts and status; default: the kernel's.
	Hostname string `yaml:"hostname"`
	// Interval is how often the agent gathers its own metrics (and, with
	// rules, evaluates them).
	Interval yamlx.Duration `yaml:"interval"`
	// Labels are added to every alert (a rule's own label of the same name
	// wins), e.g. {role: api, datacenter: fra1}, so that the central side
	// can route on them.
	Labels map[string]string `yaml:"labels"`
	// StateDir holds the state file (log positions, alert states, outbox).
	StateDir string           `yaml:"state_dir"`
	Paths    collectors.Paths `yaml:"paths"`
	Log      LogConfig        `yaml:"log"`
}

// LogConfig sets the agent's own logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// WebConfig is the "web:" section: the HTTP server for /metrics and the API.
type WebConfig struct {
	Listen string `yaml:"listen"`
	// ConfigFile is an exporter-toolkit web configuration file (TLS, basic
	// auth); empty serves plain HTTP.
	ConfigFile string `yaml:"config_file"`
	// AllowedHosts are DNS names clients may use to reach the agent (in the
	// Host header) besides IP addresses, localhost, agent.hostname and the
	// host of Listen: the names Prometheus scrapes it by. Other names are
	// refused, against DNS rebinding.
	AllowedHosts []string `yaml:"allowed_hosts"`
}

// Default returns the configuration that applies where agent.yaml is silent.
func Default() Config {
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	return Config{
		Agent: AgentConfig{
			Hostname: host,
			Interval: yamlx.Duration(10e9),
			StateDir: defaultStateDir(),
			Paths:    collectors.DefaultPaths(),
			Log:      LogConfig{Level: "info", Format: "text"},
		},
		Web:        WebConfig{Listen: DefaultListen},
		Config:     collectors.DefaultConfig(),
		Severities: alert.DefaultPolicies(),
		Notify:     notify.DefaultConfig(),
	}
}

// defaultStateDir follows where the agent runs: systemd's StateDirectory=
// when set, /var/lib/tokpulse-agent for root, and the user's XDG state
// directory otherwise, so that "make run" works without privileges.
func defaultStateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/tokpulse-agent"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "tokpulse-agent")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "tokpulse-agent")
	}
	return "/var/lib/tokpulse-agent"
}

// Parse decodes and validates data read from name. The error, if any, is a
// yamlx.Problems listing every mistake with its file, line and key.
func Parse(name string, data []byte) (*Config, error) {
	cfg := Default()
	warnings, err := yamlx.DecodeAll(name, data, &cfg)
	if err != nil {
		return nil, err
	}
	cfg.warnings = warnings
	return &cfg, nil
}

// Load reads the configuration file at path, or the embedded default when
// path is empty.
func Load(path string) (*Config, error) {
	if path == "" {
		return Parse(DefaultConfigName, defaultConfigYAML)
	}
	// A FIFO or a device as --config must not hang check or a reload, and
	// a huge file must not take minutes: read it safely, capped.
	data, err := safefile.ReadFile(path, safefile.MaxConfig, "configuration file")
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w (pass --config with the path of agent.yaml)", err)
	}
	return Parse(path, data)
}

// WebOf reads only the web section of the configuration file at path
// (the embedded default when empty): where the running agent listens,
// for the commands that talk to it (status, notify test). Those must work
// whatever else the file holds: it may not load at all while the agent
// runs on its last good copy, and it names secrets that the operator
// running the command need not be able to read.
func WebOf(path string) (WebConfig, error) {
	data := defaultConfigYAML
	if path != "" {
		var err error
		if data, err = safefile.ReadFile(path, safefile.MaxConfig, "configuration file"); err != nil {
			return WebConfig{}, fmt.Errorf("reading configuration: %w (pass --config with the path of agent.yaml, or --url)", err)
		}
	}
	partial := struct {
		Web WebConfig `yaml:"web"`
	}{Web: Default().Web}
	if err := yaml.Unmarshal(data, &partial); err != nil {
		return WebConfig{}, fmt.Errorf("%s: %w (tokpulse-agent check shows every problem; or pass --url)", displayName(path), err)
	}
	if partial.Web.Listen == "" {
		partial.Web.Listen = DefaultListen
	}
	return partial.Web, nil
}

// DefaultConfigYAML returns the embedded default configuration, for
// "tokpulse-agent config default" and the documentation.
func DefaultConfigYAML() []byte { return defaultConfigYAML }

// Validate implements yamlx.Validator.
func (c *Config) Validate(v *yamlx.Checker, path string) {
	c.Agent.Validate(v, yamlx.Join(path, "agent"))
	c.Web.Validate(v, yamlx.Join(path, "web"))
	c.Config.Validate(v, path)
	c.Severities.Validate(v, yamlx.Join(path, "severities"))
	for i, g := range c.RuleFiles {
		if _, err := filepath.Match(g, ""); err != nil {
			v.Errorf(yamlx.Index(yamlx.Join(path, "rule_files"), i), "%q is not a valid glob: %v; write e.g. /etc/tokpulse-agent/rules.d/*.yml", g, err)
		}
	}
	c.Notify.Validate(v, yamlx.Join(path, "notify"))
	actions.ValidateList(c.Actions, v, yamlx.Join(path, "actions"))
}

// Validate implements yamlx.Validator.
func (a *AgentConfig) Validate(v *yamlx.Checker, path string) {
	if a.Hostname == "" {
		v.Errorf(yamlx.Join(path, "hostname"), "must not be empty; remove the key to use the kernel's host name")
	}
	if a.Interval.D() < 1e9 {
		v.Errorf(yamlx.Join(path, "interval"), "%s is too short; write at least 1s (the default is 10s)", a.Interval)
	}
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		switch {
		case !model.LegacyValidation.IsValidLabelName(k):
			v.Errorf(yamlx.Join(yamlx.Join(path, "labels"), k), "%q is not a label name; use letters, digits and _ and start with a letter", k)
		case k == "alertname" || k == "severity" || strings.HasPrefix(k, "__"):
			v.Errorf(yamlx.Join(yamlx.Join(path, "labels"), k), "%q is set by the rules themselves; choose another name", k)
		}
	}
	if !filepath.IsAbs(a.StateDir) {
		v.Errorf(yamlx.Join(path, "state_dir"), "%q is not an absolute path; write e.g. /var/lib/tokpulse-agent", a.StateDir)
	}
	a.Paths.Validate(v, yamlx.Join(path, "paths"))
	switch a.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.Errorf(yamlx.Join(path, "log.level"), "%q is not a level; write one of debug, info, warn, error", a.Log.Level)
	}
	switch a.Log.Format {
	case "text", "json":
	default:
		v.Errorf(yamlx.Join(path, "log.format"), "%q is not a format; write text or json", a.Log.Format)
	}
}

// Validate implements yamlx.Validator.
func (w *WebConfig) Validate(v *yamlx.Checker, path string) {
	if w.Listen == "" {
		v.Errorf(yamlx.Join(path, "listen"), "must not be empty; write host:port, e.g. %s", DefaultListen)
	} else if _, _, err := net.SplitHostPort(w.Listen); err != nil {
		v.Errorf(yamlx.Join(path, "listen"), "%q is not host:port; write e.g. %s (or [::1]:9847)", w.Listen, DefaultListen)
	}
	for i, h := range w.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/ *") {
			v.Errorf(yamlx.Index(yamlx.Join(path, "allowed_hosts"), i), "%q is not a host name; write a DNS name without port or scheme, e.g. web-1.example.com", h)
		}
	}
	if w.ConfigFile != "" {
		if err := CheckWebConfigFile(w.ConfigFile); err != nil {
			v.Errorf(yamlx.Join(path, "config_file"), "%v", err)
		}
	}
}
