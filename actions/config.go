// Package actions is the configuration and the executor of the agent's
// guarded automated responses: the "actions:" of agent.yaml, which
// restart a systemd unit (over D-Bus) or run a command (as checks do) when
// a matching alert has fired long enough, at most max_runs per window per
// alert, verified by the alert resolving. The incident tracker (incident)
// decides when an action runs, keeps its budget and reports every run as
// an event of the incident; this package only says what an action is and
// runs it. docs/actions.md is the operator's view.
package actions

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// Default timeouts: a restart job waits for the unit to stop and start
// again (systemd's own default start timeout is 90 s); a command is the
// operator's quick fix.
const (
	DefaultRestartTimeout = 90 * time.Second
	DefaultCommandTimeout = 30 * time.Second
)

// Config is one entry of the "actions:" list.
type Config struct {
	// Name identifies the action in events, metrics and budgets.
	Name string `yaml:"name"`
	// Match holds label values an alert must have (alertname among them,
	// or in MatchRE); MatchRE regular expressions its label values must
	// match whole.
	Match   map[string]string       `yaml:"match"`
	MatchRE map[string]yamlx.Regexp `yaml:"match_re"`
	// RestartUnit is the systemd unit to restart over D-Bus; Command the
	// argv to run (no shell, $VAR expanded from Env, EnvFiles and the
	// agent's environment, as checks). Exactly one is set.
	RestartUnit string                      `yaml:"restart_unit"`
	Command     []string                    `yaml:"command"`
	Env         map[string]string           `yaml:"env"`
	EnvFiles    map[string]yamlx.SecretFile `yaml:"env_files"`
	Timeout     yamlx.Duration              `yaml:"timeout"`
	After       yamlx.Duration              `yaml:"after"`
	MaxRuns     int                         `yaml:"max_runs"`
	Per         yamlx.Duration              `yaml:"per"`
	Verify      yamlx.Duration              `yaml:"verify_within"`
	DryRun      bool                        `yaml:"dry_run"`
}

// DefaultConfig returns the defaults of one action: at most one run per
// hour per alert, judged a success when the alert resolves within a
// minute. An unset timeout (0) takes the default of the action's type,
// DefaultRestartTimeout or DefaultCommandTimeout.
func DefaultConfig() Config {
	return Config{
		MaxRuns: 1,
		Per:     yamlx.Duration(time.Hour),
		Verify:  yamlx.Duration(time.Minute),
	}
}

// UnmarshalYAML seeds the defaults before decoding.
func (c *Config) UnmarshalYAML(node *yaml.Node) error {
	*c = DefaultConfig()
	type plain Config
	return node.Decode((*plain)(c))
}

// namePattern keeps names usable as label values and state file keys.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// unitPattern is a unit name: no path, no spaces, a known type.
var unitPattern = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+\.(service|socket|target|timer|mount|path)$`)

// SelfUnit is the agent's own unit: restarting it would kill the action
// and the agent that is to verify it.
const SelfUnit = "tokpulse-agent.service"

// Unit returns RestartUnit with ".service" added when it names no type,
// as systemctl does.
func (c *Config) Unit() string {
	if c.RestartUnit == "" || strings.Contains(c.RestartUnit, ".") {
		return c.RestartUnit
	}
	return c.RestartUnit + ".service"
}

// Validate implements yamlx.Validator.
func (c *Config) Validate(v *yamlx.Checker, path string) {
	if !namePattern.MatchString(c.Name) {
		v.Errorf(yamlx.Join(path, "name"), "%q is not a name; write letters, digits, _ . or -, e.g. name: restart-app", c.Name)
	}
	if c.Match["alertname"] == "" && c.MatchRE["alertname"].IsZero() {
		v.Errorf(yamlx.Join(path, "match"), "an action must name the alerts it answers; write e.g. match: {alertname: TokPulseHealthCheckFailed}")
	}
	for k := range c.MatchRE {
		if _, dup := c.Match[k]; dup {
			v.Errorf(yamlx.Join(path, "match_re"), "label %s is in both match and match_re; keep one", k)
		}
	}
	switch {
	case c.RestartUnit != "" && len(c.Command) > 0:
		v.Errorf(yamlx.Join(path, "command"), "an action either restarts a unit or runs a command; remove restart_unit or command")
	case c.RestartUnit == "" && len(c.Command) == 0:
		v.Errorf(path, "an action needs restart_unit (e.g. restart_unit: tokpulse.service) or command (e.g. command: [/usr/local/bin/flush-queue, --safe])")
	case c.RestartUnit != "":
		switch u := c.Unit(); {
		case !unitPattern.MatchString(u):
			v.Errorf(yamlx.Join(path, "restart_unit"), "%q is not a unit name; write e.g. restart_unit: tokpulse.service", c.RestartUnit)
		case u == SelfUnit:
			v.Errorf(yamlx.Join(path, "restart_unit"), "the agent cannot restart itself (it would not see the outcome); systemd restarts it on failure")
		}
		if len(c.Env) > 0 || len(c.EnvFiles) > 0 {
			v.Errorf(yamlx.Join(path, "env"), "env and env_files apply to command actions only; remove them")
		}
	case c.Command[0] == "":
		v.Errorf(yamlx.Join(path, "command"), "the command's first argument is the program; write e.g. command: [/usr/local/bin/flush-queue, --safe]")
	}
	for k := range c.EnvFiles {
		if _, dup := c.Env[k]; dup {
			v.Errorf(yamlx.Join(path, "env_files"), "%s is set in both env and env_files; keep one", k)
		}
	}
	if c.MaxRuns < 1 {
		v.Errorf(yamlx.Join(path, "max_runs"), "must be at least 1 (to turn the action off, remove it or set dry_run: true)")
	}
	if c.Per.D() <= 0 {
		v.Errorf(yamlx.Join(path, "per"), "the budget's window must be positive; write e.g. per: 1h")
	}
	if c.Verify.D() <= 0 {
		v.Errorf(yamlx.Join(path, "verify_within"), "must be positive: it is how long the alert has to resolve for the action to count as a success; write e.g. verify_within: 60s")
	}
}

// timeout is the configured timeout, or the default of the action's type.
func (c *Config) timeout() time.Duration {
	switch {
	case c.Timeout > 0:
		return c.Timeout.D()
	case c.RestartUnit != "":
		return DefaultRestartTimeout
	}
	return DefaultCommandTimeout
}

// ValidateList validates every action of the list and rejects a name used
// twice.
func ValidateList(list []Config, v *yamlx.Checker, path string) {
	seen := map[string]bool{}
	for i := range list {
		p := yamlx.Index(path, i)
		list[i].Validate(v, p)
		if n := list[i].Name; n != "" && seen[n] {
			v.Errorf(yamlx.Join(p, "name"), "action name %q is used twice; names must be unique", n)
		}
		seen[list[i].Name] = true
	}
}

// Action returns the tracker's view of c.
func (c *Config) Action() incident.Action {
	a := incident.Action{
		Name: c.Name, Match: maps.Clone(c.Match), After: c.After.D(), MaxRuns: c.MaxRuns, Per: c.Per.D(),
		VerifyWithin: c.Verify.D(), Timeout: c.timeout(), DryRun: c.DryRun,
	}
	if len(c.MatchRE) > 0 {
		a.MatchRE = map[string]*regexp.Regexp{}
		for k, re := range c.MatchRE {
			// Anchored as Prometheus' and Alertmanager's matchers are: the
			// whole value must match.
			a.MatchRE[k] = regexp.MustCompile("^(?:" + re.String() + ")$")
		}
	}
	if c.RestartUnit != "" {
		a.Type, a.Unit = alert.ActionRestartUnit, c.Unit()
	} else {
		a.Type, a.Command = alert.ActionCommand, slices.Clone(c.Command)
	}
	return a
}

// String describes the action in one line, for logs and `check`.
func (c *Config) String() string {
	a := c.Action()
	s := fmt.Sprintf("%s: %s, after %s, at most %d per %s per alert, verified within %s", c.Name, a.Description(), c.After, c.MaxRuns, c.Per, c.Verify)
	if c.DryRun {
		s += " (dry run)"
	}
	return s
}
