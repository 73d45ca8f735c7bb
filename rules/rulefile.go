package rules

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	rulepack "github.com/tokpulse/tokpulse-agent/packaging/rules"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/safefile"
)

// Group is one rule group of a rule file: rules evaluated in order at the
// group's interval.
type Group struct {
	Name string
	File string
	// Interval is the group's own "interval:"; 0 means every agent.interval.
	Interval time.Duration
	// Limit is the group's "limit:" on alerts per rule (0: none).
	Limit       int
	QueryOffset time.Duration
	Labels      map[string]string
	Rules       []*Rule
}

// Rule is one alerting or recording rule.
type Rule struct {
	// Alert is the alert name; empty for a recording rule.
	Alert string
	// Record is the recorded metric name; empty for an alerting rule.
	Record        string
	Expr          string
	For           time.Duration
	KeepFiringFor time.Duration
	Labels        labels.Labels
	Annotations   labels.Labels
	// Severity is the value of the "severity" label (alerting rules only).
	Severity alert.Severity
	// File and Line locate the rule for messages.
	File  string
	Line  int
	Group string

	// ranges is the longest time the expression looks back.
	ranges time.Duration
	// templatesQuery is set when a label or annotation template calls
	// query, whose result may change while the alert's value does not.
	templatesQuery bool
	// active holds the rule's alert instances by fingerprint.
	active map[string]*instance
}

// Name returns the alert or record name.
func (r *Rule) Name() string {
	if r.Alert != "" {
		return r.Alert
	}
	return r.Record
}

// key identifies an alerting rule across reloads and restarts.
func (r *Rule) key() string { return r.Group + "\x00" + r.Alert }

// newParser is the PromQL parser of rule files and unit tests; one
// configuration for both, so that what `check` accepts the daemon runs.
func newParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// ExpandGlobs returns the files matching the globs, sorted, without
// duplicates. A glob that matches nothing is not an error (a drop-in
// directory may be empty), but a malformed one is, and so is a plain path
// (no *, ? or [) that does not exist: that is a typo, and it would
// silently load no rules.
func ExpandGlobs(globs []string) ([]string, error) {
	var files []string
	for _, g := range globs {
		if rulepack.IsBuiltin(g) {
			if _, err := rulepack.Read(g); err != nil {
				return nil, fmt.Errorf("rule_files: %q is not a rule file built into the agent (there is builtin:runbook.yml): %w", g, err)
			}
			files = append(files, g)
			continue
		}
		m, err := filepath.Glob(g)
		if err != nil {
			return nil, fmt.Errorf("rule_files: %q is not a valid glob: %w", g, err)
		}
		if len(m) == 0 && !isGlob(g) {
			return nil, fmt.Errorf("rule_files: %s does not exist; correct the path, or write a glob such as %s/*.yml for a directory that may be empty", g, filepath.Dir(g))
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	return slices.Compact(files), nil
}

// isGlob reports whether g has glob metacharacters, as filepath.Match
// reads them.
func isGlob(g string) bool { return strings.ContainsAny(g, `*?[\`) }

// UnmatchedGlobs returns the globs that match no file: not an error (a
// drop-in directory may be empty), but worth a warning, since a typo in a
// path silently loads no rules. (A plain path that matches nothing is an
// error of ExpandGlobs.)
func UnmatchedGlobs(globs []string) []string {
	var out []string
	for _, g := range globs {
		if rulepack.IsBuiltin(g) {
			continue // ExpandGlobs rejects a missing one
		}
		if m, err := filepath.Glob(g); err == nil && len(m) == 0 {
			out = append(out, g)
		}
	}
	return out
}

// LoadFiles parses and validates every rule file the globs match. The
// error lists every problem of every file, each as "file:line: ...".
func LoadFiles(globs []string, logger *slog.Logger) ([]*Group, []string, error) {
	files, err := ExpandGlobs(globs)
	if err != nil {
		return nil, nil, err
	}
	var (
		groups []*Group
		errs   []error
	)
	for _, f := range files {
		gs, err := LoadFile(f, logger)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		groups = append(groups, gs...)
	}
	return groups, files, errors.Join(errs...)
}

// LoadFile parses one rule file with Prometheus' own rulefmt (so that what
// passes here passes `promtool check rules`) and adds the agent's own
// requirement: every alerting rule has a severity label P1..P4.
func LoadFile(file string, logger *slog.Logger) ([]*Group, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var (
		data []byte
		err  error
	)
	if rulepack.IsBuiltin(file) {
		data, err = rulepack.Read(file)
	} else {
		// A FIFO named as a rule file must not hang check or a reload.
		data, err = safefile.ReadFile(file, safefile.MaxRuleFile, "rule file")
	}
	if err != nil {
		return nil, fmt.Errorf("reading rule file: %w (check rule_files in agent.yaml)", err)
	}
	p := newParser()
	rgs, errs := rulefmt.Parse(data, false, model.UTF8Validation, p, logger)
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			// rulefmt's own errors start with "line:col:", YAML's do not.
			sep := ": "
			if m := e.Error(); m != "" && m[0] >= '0' && m[0] <= '9' {
				sep = ":"
			}
			msgs[i] = file + sep + e.Error()
		}
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	lines := ruleLines(data)
	var (
		groups []*Group
		probs  []string
	)
	for gi, rg := range rgs.Groups {
		g := &Group{
			Name: rg.Name, File: file, Interval: time.Duration(rg.Interval),
			Limit: rg.Limit, Labels: rg.Labels,
		}
		if rg.QueryOffset != nil {
			g.QueryOffset = time.Duration(*rg.QueryOffset)
		}
		for ri, rr := range rg.Rules {
			line := lines.rule(gi, ri)
			expr, err := p.ParseExpr(rr.Expr)
			if err != nil { // rulefmt parsed it already; never expected
				probs = append(probs, fmt.Sprintf("%s:%d: %v", file, line, err))
				continue
			}
			lb := labels.NewBuilder(labels.FromMap(g.Labels))
			for k, v := range rr.Labels {
				lb.Set(k, v)
			}
			r := &Rule{
				Alert: rr.Alert, Record: rr.Record, Expr: rr.Expr,
				For: time.Duration(rr.For), KeepFiringFor: time.Duration(rr.KeepFiringFor),
				Labels: lb.Labels(), Annotations: labels.FromMap(rr.Annotations),
				File: file, Line: line, Group: g.Name,
				ranges: lookback(expr), active: map[string]*instance{},
			}
			for _, m := range []map[string]string{rr.Labels, rr.Annotations} {
				for _, v := range m {
					r.templatesQuery = r.templatesQuery || strings.Contains(v, "query")
				}
			}
			if r.Alert != "" {
				sev, ok := rr.Labels["severity"]
				if !ok {
					sev, ok = g.Labels["severity"]
				}
				switch {
				case !ok:
					probs = append(probs, fmt.Sprintf("%s:%d: group %q, alert %q: the label \"severity\" is missing; add severity: P1, P2, P3 or P4 under labels: (the runbook's incident classes)", file, line, g.Name, r.Alert))
				case !alert.Severity(sev).Valid():
					probs = append(probs, fmt.Sprintf("%s:%d: group %q, alert %q: severity %q is not a runbook class; write P1, P2, P3 or P4", file, lines.severity(gi, ri, line), g.Name, r.Alert, sev))
				default:
					r.Severity = alert.Severity(sev)
				}
			}
			g.Rules = append(g.Rules, r)
		}
		groups = append(groups, g)
	}
	if len(probs) > 0 {
		return nil, errors.New(strings.Join(probs, "\n"))
	}
	return groups, nil
}

// lookback returns how far back expr reads: its longest range or subquery
// plus offsets.
func lookback(expr parser.Expr) time.Duration {
	var longest time.Duration
	parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
		var d time.Duration
		switch x := n.(type) {
		case *parser.MatrixSelector:
			d = x.Range
			if vs, ok := x.VectorSelector.(*parser.VectorSelector); ok {
				d += max(vs.OriginalOffset, 0)
			}
		case *parser.SubqueryExpr:
			d = x.Range + max(x.OriginalOffset, 0)
		case *parser.VectorSelector:
			d = max(x.OriginalOffset, 0)
		}
		// Nested subqueries add up; a rough sum along the path is enough
		// for sizing the window.
		for _, p := range path {
			if sq, ok := p.(*parser.SubqueryExpr); ok {
				d += sq.Range
			}
		}
		longest = max(longest, d)
		return nil
	})
	return longest
}

// lineIndex maps group and rule indexes to the lines where they start.
type lineIndex struct {
	rules    [][]int
	sevLines [][]int
}

func (l lineIndex) rule(g, r int) int {
	if g < len(l.rules) && r < len(l.rules[g]) {
		return l.rules[g][r]
	}
	return 0
}

func (l lineIndex) severity(g, r, fallback int) int {
	if g < len(l.sevLines) && r < len(l.sevLines[g]) && l.sevLines[g][r] > 0 {
		return l.sevLines[g][r]
	}
	return fallback
}

// ruleLines finds the line of every rule and of its severity label in the
// YAML tree; rulefmt keeps no positions for labels.
func ruleLines(data []byte) lineIndex {
	var doc yaml.Node
	var idx lineIndex
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return idx
	}
	groups := mapValue(doc.Content[0], "groups")
	if groups == nil {
		return idx
	}
	for _, g := range groups.Content {
		var rl, sl []int
		if rules := mapValue(g, "rules"); rules != nil {
			for _, r := range rules.Content {
				rl = append(rl, r.Line)
				line := 0
				if lb := mapValue(r, "labels"); lb != nil {
					if s := mapValue(lb, "severity"); s != nil {
						line = s.Line
					}
				}
				sl = append(sl, line)
			}
		}
		idx.rules = append(idx.rules, rl)
		idx.sevLines = append(idx.sevLines, sl)
	}
	return idx
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
