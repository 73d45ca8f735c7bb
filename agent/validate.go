package agent

import (
	"fmt"

	tpcollectors "github.com/tokpulse/tokpulse-agent/collectors"
	"github.com/tokpulse/tokpulse-agent/notify"
)

// Validation is what Validate found in a configuration that holds.
type Validation struct {
	// RuleFiles are the rule files loaded, and Rules the rules in them.
	RuleFiles []string
	Rules     int
	// Warnings are what works but should be changed, one line each,
	// "file:line:column: key: message".
	Warnings []string
}

// Validate checks a loaded configuration the way the daemon uses it: it
// builds the collectors and the notify outputs with the constructors the
// daemon uses (reading every secret, CA, certificate and template file as
// the user it runs as), and loads every rule file. `tokpulse-agent check`
// and `tokpulse-agent run` both call it before anything else, so check
// refuses exactly what would stop the agent from starting; run as the
// service's user (the unit's ExecStartPre, or check --as-user), it proves
// what the service will be able to read.
func Validate(cfg *Config, configFile string) (*Validation, error) {
	if _, err := tpcollectors.Build(cfg.Config, tpcollectors.Options{Paths: cfg.Agent.Paths}); err != nil {
		return nil, err
	}
	if err := notify.Check(cfg.Notify); err != nil {
		return nil, fmt.Errorf("building notify outputs: %w", err)
	}
	files, n, err := CheckRules(cfg, configFile)
	if err != nil {
		return nil, err
	}
	v := &Validation{RuleFiles: files, Rules: n}
	for _, w := range cfg.Warnings() {
		v.Warnings = append(v.Warnings, w.String())
	}
	for _, g := range UnmatchedRuleGlobs(cfg, configFile) {
		v.Warnings = append(v.Warnings, fmt.Sprintf("rule_files: %q matches no file (yet)", g))
	}
	return v, nil
}
