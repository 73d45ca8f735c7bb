// Package rulepack carries the default rule pack inside the binary, so that
// the embedded default configuration (and any configuration that names
// "builtin:runbook.yml" in rule_files) has the runbook's rules on a host
// where the package's /usr/share/tokpulse-agent/rules is not installed,
// as under `make run`; and the agent's own alerts (SelfRules), which are
// always loaded.
package rulepack

import (
	"embed"
	"strings"
)

// Prefix marks a rule_files entry that names a rule file of the pack.
const Prefix = "builtin:"

// SelfRules names the rule file of the agent's own alerts, which the agent
// loads whatever rule_files says. It lives in a directory of its own, so
// that the package's copy of the pack (*.yml here) does not hold it too.
const SelfRules = Prefix + "self/agent.yml"

//go:embed runbook.yml self/agent.yml
var files embed.FS

// IsBuiltin reports whether a rule_files entry names the embedded pack.
func IsBuiltin(name string) bool { return strings.HasPrefix(name, Prefix) }

// Read returns the embedded rule file named "builtin:NAME".
func Read(name string) ([]byte, error) {
	return files.ReadFile(strings.TrimPrefix(name, Prefix))
}

// Pack is the embedded pack as a value, for the code that reads rule files
// (rules.LoadOptions.Pack): the rules package does not import packaging.
type Pack struct{}

// IsBuiltin is the package's IsBuiltin.
func (Pack) IsBuiltin(name string) bool { return IsBuiltin(name) }

// Read is the package's Read.
func (Pack) Read(name string) ([]byte, error) { return Read(name) }
