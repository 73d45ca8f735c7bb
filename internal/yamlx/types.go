package yamlx

import (
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/safefile"
)

// Duration is a non-negative duration written the Prometheus way ("10s",
// "1m30s", "500ms", "1d"). Negative or unit-less values are rejected at their
// line with an example of what to write.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return Fail(node, "expected a duration such as 10s, 5m or 1h")
	}
	s := strings.TrimSpace(node.Value)
	if strings.HasPrefix(s, "-") {
		return Fail(node, "duration %q is negative; write a positive duration such as 10s", s)
	}
	if s == "0" {
		*d = 0
		return nil
	}
	v, err := model.ParseDuration(s)
	if err != nil {
		return Fail(node, "%q is not a duration; write a number with a unit (ms, s, m, h, d), such as 10s", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back in the form it is read.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String formats the duration as Prometheus does ("1m30s", "0s").
func (d Duration) String() string { return model.Duration(d).String() }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Regexp is a regular expression compiled when the file is read, so that a
// syntax error is reported at its line rather than when it is first used.
// Its zero value matches nothing and reports IsZero.
type Regexp struct {
	*regexp.Regexp
}

// MustRegexp compiles a default; it panics on a programming error only.
func MustRegexp(s string) Regexp { return Regexp{regexp.MustCompile(s)} }

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *Regexp) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return Fail(node, "expected a regular expression as a string")
	}
	if node.Value == "" {
		r.Regexp = nil
		return nil
	}
	re, err := regexp.Compile(node.Value)
	if err != nil {
		return Fail(node, "invalid regular expression %q: %v (Go RE2 syntax; quote the value in single quotes)", node.Value, err)
	}
	r.Regexp = re
	return nil
}

// MarshalYAML writes the expression's source.
func (r Regexp) MarshalYAML() (any, error) {
	if r.Regexp == nil {
		return "", nil
	}
	return r.String(), nil
}

// IsZero reports whether no expression was set.
func (r Regexp) IsZero() bool { return r.Regexp == nil }

// Match reports whether s matches; a zero Regexp matches nothing.
func (r Regexp) Match(s string) bool { return r.Regexp != nil && r.MatchString(s) }

// SecretFile is the path of a file that holds a secret (a token, an HMAC key,
// a password). Only the path is ever in the configuration; the secret is read
// when needed and never logged.
type SecretFile string

// SecretSpace is the white space Read removes from both ends of a secret
// file: ASCII only (space, tab, LF, VT, FF, CR), the set Python's
// bytes.strip() removes, so that a receiver of the webhook can derive the
// same HMAC key in any language (docs/webhook.md, "The signing key").
const SecretSpace = " \t\n\v\f\r"

// Read returns the file's content without leading and trailing
// SecretSpace; nothing else is changed or decoded.
func (f SecretFile) Read() (Secret, error) {
	s, _, err := f.read()
	return s, err
}

func (f SecretFile) read() (Secret, fs.FileInfo, error) {
	b, fi, err := safefile.Read(string(f), safefile.MaxSecret, "secret file")
	if err != nil {
		return "", nil, fmt.Errorf("reading secret file %s: %w (create it, readable by the agent's user only)", string(f), err)
	}
	return Secret(strings.Trim(string(b), SecretSpace)), fi, nil
}

// CheckSecretFile reads the secret file at path (a key ending in _file) as
// the agent will read it, and records an error when it cannot (so that
// `check`, run as the service's user, proves the service can) and a
// warning when users other than its owner may read it.
func (c *Checker) CheckSecretFile(path string, f SecretFile) {
	c.checkSecretFile(path, f, c.Errorf, "")
}

// CheckRunSecretFile is CheckSecretFile for a secret read at every run of a
// probe or check (header_files, env_files): one that cannot be read only
// fails those runs, so it is a warning.
func (c *Checker) CheckRunSecretFile(path string, f SecretFile) {
	c.checkSecretFile(path, f, c.Warnf, "; every run fails with this until the file can be read")
}

func (c *Checker) checkSecretFile(path string, f SecretFile, report func(string, string, ...any), consequence string) {
	if f == "" {
		return
	}
	_, fi, err := f.read()
	switch {
	case err != nil:
		report(path, "%v%s", err, consequence)
	case safefile.ReadableByOthers(fi):
		c.Warnf(path, "secret file %s can be read by users other than its owner and group (mode %04o); run chmod 640 %s, owned by root and the agent's group (chgrp tokpulse-agent)", string(f), fi.Mode().Perm(), string(f))
	}
}

// Secret is a string that never prints itself, so that a secret cannot reach a
// log line or an error message by accident.
type Secret string

// String hides the value.
func (Secret) String() string { return "<secret>" }

// GoString hides the value from %#v as well.
func (Secret) GoString() string { return "<secret>" }

// LogValue hides the value from log/slog.
func (Secret) LogValue() slog.Value { return slog.StringValue("<secret>") }

// Reveal returns the secret itself; call it only where the secret is used.
func (s Secret) Reveal() string { return string(s) }
