package agent

import (
	"fmt"
	"log/slog"
	"time"
)

// Validation is what Validate found in a configuration that holds.
type Validation struct {
	// Config is the configuration as decoded.
	Config *Config
	// RuleFiles are the rule files loaded (the agent's own included), and
	// Rules the rules in them.
	RuleFiles []string
	Rules     int
	// Warnings are what works but should be changed, one line each,
	// "file:line:column: key: message".
	Warnings []string
}

// Validate checks the configuration file ("" for the embedded default)
// exactly as the daemon builds it at start and on reload — the same build
// function: it decodes and validates the file, loads every rule file (the
// agent's own included), builds every notify output and every collector
// with the daemon's constructors (reading every secret, CA, certificate
// and template file as the user it runs as). `tokpulse-agent check` calls
// it, so check refuses exactly what the daemon would; run as the service's
// user (check --as-user), it proves what the service will be able to read.
// Problems of the file itself come back as a yamlx.Problems.
func Validate(configFile string) (*Validation, error) {
	src, err := readConfigSource(configFile)
	if err != nil {
		return nil, err
	}
	a := &Agent{logger: slog.New(slog.DiscardHandler), opts: Options{Now: time.Now, ConfigFile: configFile}}
	g, err := a.build(src, nil)
	if err != nil {
		return nil, err
	}
	v := &Validation{Config: g.cfg, RuleFiles: g.rules.Files, Rules: g.rules.Rules()}
	for _, w := range g.cfg.Warnings() {
		v.Warnings = append(v.Warnings, w.String())
	}
	return v, nil
}

// warnings logs what a configuration that loads should still change.
func (a *Agent) logWarnings(cfg *Config) {
	for _, w := range cfg.Warnings() {
		a.logger.Warn(fmt.Sprintf("Configuration warning: %s", w.String()))
	}
}
