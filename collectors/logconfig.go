package collectors

import (
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// The configuration of the line pipeline shared by file (logs:) and
// journal (journal:) sources: the named patterns and the log-derived
// metrics, their defaults and validation.

// LogPattern is one named expression counted in
// tokpulse_log_matches_total{source,pattern} and kept as evidence.
type LogPattern struct {
	Name   string       `yaml:"name"`
	Regexp yamlx.Regexp `yaml:"regexp"`
}

// DefaultLogPatterns are the runbook's four greps, used by a source that
// sets no patterns.
func DefaultLogPatterns() []LogPattern {
	return []LogPattern{
		{Name: "error", Regexp: yamlx.MustRegexp(`(?i)error|fail|denied`)},
		{Name: "auth", Regexp: yamlx.MustRegexp(`(?i)auth|login|token`)},
		{Name: "rate_limit", Regexp: yamlx.MustRegexp(`(?i)rate.*limit`)},
		{Name: "webhook", Regexp: yamlx.MustRegexp(`(?i)webhook`)},
	}
}

// LogMetricConfig declares one metric derived from log lines: every line
// that Regexp matches updates it, with the named groups listed in Labels as
// labels (besides source) and the named group Value as the number.
type LogMetricConfig struct {
	// Name is the full metric name, e.g. tokpulse_http_requests_total.
	Name string `yaml:"name"`
	Help string `yaml:"help"`
	// Type is counter, gauge or histogram.
	Type   string       `yaml:"type"`
	Regexp yamlx.Regexp `yaml:"regexp"`
	// Value names the group holding the number. A counter without one
	// counts matching lines; gauges and histograms need one.
	Value string `yaml:"value"`
	// Scale multiplies the captured number (0.001 turns milliseconds into
	// seconds, the base unit Prometheus expects).
	Scale float64 `yaml:"scale"`
	// Labels are named groups whose text becomes a label value.
	Labels []string `yaml:"labels"`
	// Buckets are a histogram's upper bounds, in scaled units.
	Buckets []float64 `yaml:"buckets"`
	// MaxLabelSets caps the series of this metric per source; lines that
	// would create more are dropped and counted.
	MaxLabelSets int `yaml:"max_label_sets"`
}

// DefaultMaxLabelSets bounds a log-derived metric's series per source.
const DefaultMaxLabelSets = 100

// UnmarshalYAML seeds the defaults before decoding.
func (m *LogMetricConfig) UnmarshalYAML(node *yaml.Node) error {
	type plain LogMetricConfig
	*m = LogMetricConfig{Scale: 1, MaxLabelSets: DefaultMaxLabelSets}
	return node.Decode((*plain)(m))
}

// Validate implements yamlx.Validator.
func (m *LogMetricConfig) Validate(c *yamlx.Checker, path string) {
	if !model.LegacyValidation.IsValidMetricName(m.Name) {
		c.Errorf(yamlx.Join(path, "name"), "%q is not a metric name; write letters, digits and underscores, such as myapp_orders_total", m.Name)
	}
	if m.Regexp.IsZero() {
		c.Errorf(yamlx.Join(path, "regexp"), "a log metric needs a regexp with named groups, such as ' (?P<status>\\d{3}) '")
		return
	}
	groups := map[string]bool{}
	for _, n := range m.Regexp.SubexpNames() {
		if n != "" {
			groups[n] = true
		}
	}
	switch m.Type {
	case "counter":
	case "gauge", "histogram":
		if m.Value == "" {
			c.Errorf(yamlx.Join(path, "value"), "a %s needs value: the named group that holds the number", m.Type)
		}
	default:
		c.Errorf(yamlx.Join(path, "type"), "%q is not a metric type; write counter, gauge or histogram", m.Type)
	}
	if m.Value != "" && !groups[m.Value] {
		c.Errorf(yamlx.Join(path, "value"), "the regexp has no group named %q; write (?P<%s>\\d+) in it", m.Value, m.Value)
	}
	for i, l := range m.Labels {
		if !groups[l] {
			c.Errorf(yamlx.Index(yamlx.Join(path, "labels"), i), "the regexp has no group named %q; write (?P<%s>...) in it", l, l)
		}
		if l == "source" || !model.LegacyValidation.IsValidLabelName(l) {
			c.Errorf(yamlx.Index(yamlx.Join(path, "labels"), i), "%q cannot be a label name (source is set by the agent); rename the group", l)
		}
	}
	if m.Type == "histogram" {
		if len(m.Buckets) == 0 {
			c.Errorf(yamlx.Join(path, "buckets"), "a histogram needs buckets, such as [.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10]")
		} else if !slices.IsSorted(m.Buckets) {
			c.Errorf(yamlx.Join(path, "buckets"), "buckets must be in increasing order")
		}
	} else if len(m.Buckets) > 0 {
		c.Errorf(yamlx.Join(path, "buckets"), "buckets apply to histograms only; remove them or write type: histogram")
	}
	if m.MaxLabelSets < 1 {
		c.Errorf(yamlx.Join(path, "max_label_sets"), "must be at least 1")
	}
	if m.Scale == 0 {
		c.Errorf(yamlx.Join(path, "scale"), "must not be 0; write 1 to keep the number as logged")
	}
}

// validateLogMetricsAcross checks that a metric declared by several sources
// is declared the same way, since they share one metric family.
func validateLogMetricsAcross(c *yamlx.Checker, lists map[string][]LogMetricConfig) {
	type seen struct {
		path string
		m    LogMetricConfig
	}
	first := map[string]seen{}
	keys := make([]string, 0, len(lists))
	for k := range lists {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, base := range keys {
		for i, m := range lists[base] {
			p := yamlx.Index(base, i)
			if strings.HasPrefix(m.Name, "tokpulse_log_") {
				c.Errorf(yamlx.Join(p, "name"), "the prefix tokpulse_log_ is the agent's own; choose another name")
			}
			f, ok := first[m.Name]
			if !ok {
				first[m.Name] = seen{p, m}
				continue
			}
			if f.m.Type != m.Type || f.m.Help != m.Help || !slices.Equal(f.m.Labels, m.Labels) || !slices.Equal(f.m.Buckets, m.Buckets) {
				c.Errorf(p, "metric %s is also declared at %s with another type, help, labels or buckets; declare it the same way in every source", m.Name, f.path)
			}
		}
	}
}

// validatePatterns checks a source's patterns.
func validatePatterns(c *yamlx.Checker, path string, ps []LogPattern) {
	names := map[string]bool{}
	for i, p := range ps {
		ip := yamlx.Index(path, i)
		if p.Name == "" || !model.LabelValue(p.Name).IsValid() {
			c.Errorf(yamlx.Join(ip, "name"), "each pattern needs a name, such as error")
		}
		if names[p.Name] {
			c.Errorf(yamlx.Join(ip, "name"), "pattern %q is listed twice; give each a distinct name", p.Name)
		}
		names[p.Name] = true
		if p.Regexp.IsZero() {
			c.Errorf(yamlx.Join(ip, "regexp"), "each pattern needs a regexp, such as '(?i)error|fail'")
		}
	}
}
