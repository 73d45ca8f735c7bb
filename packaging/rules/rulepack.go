// Package rulepack carries the default rule pack inside the binary, so that
// the embedded default configuration (and any configuration that names
// "builtin:runbook.yml" in rule_files) has the runbook's rules on a host
// where the package's /usr/share/tokpulse-agent/rules is not installed,
// as under `make run`.
package rulepack

import (
	"embed"
	"strings"
)

// Prefix marks a rule_files entry that names a rule file of the pack.
const Prefix = "builtin:"

//go:embed runbook.yml
var files embed.FS

// IsBuiltin reports whether a rule_files entry names the embedded pack.
func IsBuiltin(name string) bool { return strings.HasPrefix(name, Prefix) }

// Read returns the embedded rule file named "builtin:NAME".
func Read(name string) ([]byte, error) {
	return files.ReadFile(strings.TrimPrefix(name, Prefix))
}
