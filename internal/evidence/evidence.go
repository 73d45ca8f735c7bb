// Package evidence is the small interface through which collectors hand the
// rules what an on-call engineer would otherwise gather by hand when an alert
// fires: recent matching log lines, the last probe failure, the last check
// output. It also holds the Redactor that every piece of evidence passes
// through before it leaves the process.
package evidence

import (
	"errors"
	"net/url"
	"regexp"
	"time"
)

// Entry is one timestamped line of evidence.
type Entry struct {
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// Section is one titled block of evidence from one source.
type Section struct {
	// Source names the collector instance, e.g. "log/app", "probe/health".
	Source string `json:"source"`
	// Kind says what the block is: "log_matches", "probe_failure",
	// "check_output", "host".
	Kind  string `json:"kind"`
	Title string `json:"title"`
	// Labels are the metric labels this evidence is about (for example
	// {"probe": "health"} or {"source": "app", "pattern": "error"}). An
	// alert whose labels include all of them gets this section first.
	Labels  map[string]string `json:"labels,omitempty"`
	Entries []Entry           `json:"entries,omitempty"`
	// Relevant marks the sections that explain this alert (the alert's
	// own probe, check, log lines or unit, or the host facts its rule
	// reads), which come first and which alert texts show.
	Relevant bool `json:"relevant,omitempty"`
}

// Subject is what an evidence snapshot is for: one alert's labels and the
// metric names its rule's expression reads, which say which host facts
// explain it (node_memory_* the memory and its largest processes).
type Subject struct {
	Labels  map[string]string
	Metrics []string
}

// Provider is implemented by collectors that keep evidence. Evidence must be
// cheap, must not block, and must return redacted text only.
type Provider interface {
	Evidence() []Section
}

// Redactor removes secrets from text: bearer tokens, token=, password=, API
// keys, Authorization headers, passwords in URLs, and any expressions the
// operator adds.
type Redactor struct {
	rules []redaction
}

type redaction struct {
	re   *regexp.Regexp
	repl string
}

// Redacted replaces every secret.
const Redacted = "[REDACTED]"

// NewRedactor returns a Redactor with the built-in rules followed by extra;
// each match of an extra expression is replaced whole.
func NewRedactor(extra ...*regexp.Regexp) *Redactor {
	r := &Redactor{rules: []redaction{
		// "Authorization: Bearer x", "Authorization: Basic x" and the like:
		// the whole header value.
		{regexp.MustCompile(`(?i)\b((?:proxy-)?authorization\s*[:=]\s*)[^\r\n]+`), "${1}" + Redacted},
		{regexp.MustCompile(`(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+`), "${1}" + Redacted},
		// key=value and key: value for the usual secret names, quoted or not.
		{regexp.MustCompile(`(?i)\b((?:[a-z0-9_-]*(?:token|passw(?:or)?d|pwd|secret|api[_-]?key|apikey|access[_-]?key|private[_-]?key|session[_-]?id|cookie))["']?\s*[=:]\s*["']?)[^\s&"',;}]+`), "${1}" + Redacted},
		{regexp.MustCompile(`(?i)\b(x-api-key\s*:\s*)\S+`), "${1}" + Redacted},
		// scheme://user:password@host
		{regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@`), "${1}" + Redacted + "@"},
	}}
	for _, re := range extra {
		r.rules = append(r.rules, redaction{re, Redacted})
	}
	return r
}

// Redact returns s with every secret replaced by [REDACTED].
func (r *Redactor) Redact(s string) string {
	for _, x := range r.rules {
		s = x.re.ReplaceAllString(s, x.repl)
	}
	return s
}

// HostOnlyURL shows a URL whose path or query may be a credential (a
// webhook URL such as Slack's https://hooks.slack.com/services/T…/B…/XXXX,
// a probe marked secret_path) as scheme://host/… : enough to tell which
// receiver failed, nothing to replay. A URL that does not parse is not
// shown at all.
func HostOnlyURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(a URL, not shown: it may hold a secret)"
	}
	s := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		s += "/…"
	} else {
		s += u.Path
	}
	return s
}

// HideURLError replaces, in place, the URL that net/http puts in the text
// of a request error (*url.Error: `Post "https://…": dial tcp …`) by
// show(URL), and returns err.
func HideURLError(err error, show func(string) string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = show(ue.URL)
	}
	return err
}
