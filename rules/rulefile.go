package rules

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

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

	// retention is what the expression and the templates' queries read
	// from the store; hasRange is set when the expression reads a range
	// (rate, increase, subqueries), which needs more than one fresh
	// sample.
	retention Retention
	hasRange  bool
	// deps are the metric names the expression reads; anyDep is set when
	// a selector names no metric (a __name__ regex), so that it may read
	// any. Recording rules' names are replaced by what they read.
	deps   []string
	anyDep bool
	// expr is Expr parsed, read only: provablyEmpty's input.
	expr parser.Expr
	// templatesQuery is set when a label or annotation template calls
	// query, whose result may change while the alert's value does not.
	templatesQuery bool
	// threshold is the expression's comparison with a number, if any.
	threshold *alert.Threshold
	// annotations caches the expanded annotations by alert fingerprint.
	annotations map[string]cachedAnnotations
	// written holds the series the rule wrote at its last evaluation (a
	// recording rule's output, an alerting rule's ALERTS series), so that
	// those it stops writing get a staleness marker, as Prometheus does.
	written map[uint64]labels.Labels
}

// Name returns the alert or record name.
func (r *Rule) Name() string {
	if r.Alert != "" {
		return r.Alert
	}
	return r.Record
}

// key identifies a rule across reloads: its group, its kind and its name.
func (r *Rule) key() string { return r.Group + "\x00" + r.Alert + "\x00" + r.Record }

// newParser is the PromQL parser of rule files and unit tests; one
// configuration for both, so that what `check` accepts the daemon runs.
func newParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// ExpandGlobs returns the files matching the globs, sorted, without
// duplicates. A glob that matches nothing is not an error (a drop-in
// directory may be empty), but a malformed one is, and so is a plain path
// (no *, ? or [) that does not exist: that is a typo, and it would
// silently load no rules.
func ExpandGlobs(globs []string, pack Pack) ([]string, error) {
	var files []string
	for _, g := range globs {
		if pack != nil && pack.IsBuiltin(g) {
			if _, err := pack.Read(g); err != nil {
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
func UnmatchedGlobs(globs []string, pack Pack) []string {
	var out []string
	for _, g := range globs {
		if pack != nil && pack.IsBuiltin(g) {
			continue // ExpandGlobs rejects a missing one
		}
		if m, err := filepath.Glob(g); err == nil && len(m) == 0 {
			out = append(out, g)
		}
	}
	return out
}

// GlobDirMissing reports whether the directory of glob g does not exist:
// a glob that matches nothing there is more likely a typo than an empty
// drop-in directory, and worth a warning. A directory that is itself a
// pattern is not judged.
func GlobDirMissing(g string) bool {
	dir := filepath.Dir(g)
	if strings.ContainsAny(dir, `*?[\`) {
		return false
	}
	_, err := os.Stat(dir)
	return errors.Is(err, os.ErrNotExist)
}

// Pack is a set of rule files built into the binary, which rule_files
// names with a prefix ("builtin:runbook.yml"). The agent passes
// packaging/rules' (rulepack.Pack); rules itself reads only what it is
// given.
type Pack interface {
	// IsBuiltin reports whether a rule_files entry names a file of the pack.
	IsBuiltin(name string) bool
	// Read returns the file of the pack that name names.
	Read(name string) ([]byte, error)
}

// LoadOptions change how rule files are read.
type LoadOptions struct {
	// Pack serves the rule files built into the binary; nil: rule_files
	// names files on disk only.
	Pack Pack
	// IgnoreUnknownFields accepts keys rulefmt does not know (promtool's
	// --ignore-unknown-fields, for rule files that carry metadata of
	// their own). The daemon never sets it: Prometheus refuses such files.
	IgnoreUnknownFields bool
}

// LoadFiles parses and validates every rule file the globs match. The
// error lists every problem of every file, each as "file:line: ...".
func LoadFiles(globs []string, opts LoadOptions, logger *slog.Logger) ([]*Group, []string, error) {
	groups, files, _, err := loadFiles(globs, opts, logger)
	return groups, files, err
}

// loadFiles is LoadFiles that also returns each file's content as read.
func loadFiles(globs []string, opts LoadOptions, logger *slog.Logger) ([]*Group, []string, map[string][]byte, error) {
	files, err := ExpandGlobs(globs, opts.Pack)
	if err != nil {
		return nil, nil, nil, err
	}
	var (
		groups []*Group
		errs   []error
	)
	data := make(map[string][]byte, len(files))
	for _, f := range files {
		gs, b, err := loadFile(f, opts, logger)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		data[f] = b
		groups = append(groups, gs...)
	}
	return groups, files, data, errors.Join(errs...)
}

// LoadFile parses one rule file with Prometheus' own rulefmt (so that what
// passes here passes `promtool check rules`) and adds the agent's own
// requirement: every alerting rule has a severity label P1..P4. Every
// problem is one line of the error, "file:line:column: ...".
func LoadFile(file string, opts LoadOptions, logger *slog.Logger) ([]*Group, error) {
	gs, _, err := loadFile(file, opts, logger)
	return gs, err
}

// loadFile is LoadFile that also returns the file's content.
func loadFile(file string, opts LoadOptions, logger *slog.Logger) ([]*Group, []byte, error) {
	data, err := readRuleFile(file, opts.Pack)
	if err != nil {
		return nil, nil, err
	}
	groups, probs := ParseRules(file, data, opts, logger)
	if len(probs) > 0 {
		msgs := make([]string, len(probs))
		for i, e := range probs {
			// Positions start the message ("3:5: ..."); YAML's errors
			// have none.
			sep := ": "
			if m := e.Error(); m != "" && m[0] >= '0' && m[0] <= '9' {
				sep = ":"
			}
			msgs[i] = file + sep + e.Error()
		}
		return nil, nil, errors.New(strings.Join(msgs, "\n"))
	}
	return groups, data, nil
}

// readRuleFile reads a rule file, or a rule file built into the agent.
func readRuleFile(file string, pack Pack) ([]byte, error) {
	var (
		data []byte
		err  error
	)
	if pack != nil && pack.IsBuiltin(file) {
		data, err = pack.Read(file)
	} else {
		// A FIFO named as a rule file must not hang check or a reload.
		data, err = safefile.ReadFile(file, safefile.MaxRuleFile, "rule file")
	}
	if err != nil {
		return nil, fmt.Errorf("reading rule file: %w (check rule_files in agent.yaml)", err)
	}
	return data, nil
}

// ParseFile reads and validates one rule file like LoadFile, but returns
// each problem as rulefmt words it, without the file name: "line:column:
// group "g", rule 1, "Name": what is wrong", or a YAML error. `promtool
// check rules` prints them after "file: "; LoadFile after "file:".
func ParseFile(file string, opts LoadOptions, logger *slog.Logger) ([]*Group, []error) {
	data, err := readRuleFile(file, opts.Pack)
	if err != nil {
		return nil, []error{err}
	}
	return ParseRules(file, data, opts, logger)
}

// severityRequirement is the agent's own rule on top of Prometheus'; the
// words say so, because the same file passes `promtool check rules`.
const severityRequirement = "tokpulse-agent requires severity P1–P4 on alerting rules (Prometheus does not)"

// ParseRules validates the rule file data read from file (a name for
// messages and Rule.File), as ParseFile does.
func ParseRules(file string, data []byte, opts LoadOptions, logger *slog.Logger) ([]*Group, []error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := newParser()
	lines := ruleLines(data)
	rgs, errs := rulefmt.Parse(data, opts.IgnoreUnknownFields, model.UTF8Validation, p, logger)
	if len(errs) > 0 {
		for i, e := range errs {
			errs[i] = lines.locate(e)
		}
		return nil, errs
	}
	var (
		groups []*Group
		probs  []error
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
			r, errs := buildRule(p, lines, g, gi, ri, rr)
			probs = append(probs, errs...)
			if r != nil {
				g.Rules = append(g.Rules, r)
			}
		}
		groups = append(groups, g)
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return groups, nil
}

// buildRule makes the Rule of rr, rule ri of group gi (g), and checks
// what the agent adds to Prometheus' checks: the threshold annotation and
// the severity label. A rule with problems is still returned unless its
// expression does not parse, so that every problem of a file is told.
func buildRule(p parser.Parser, lines lineIndex, g *Group, gi, ri int, rr rulefmt.Rule) (*Rule, []error) {
	pos := lines.rule(gi, ri)
	expr, err := p.ParseExpr(rr.Expr)
	if err != nil { // rulefmt parsed it already; never expected
		return nil, []error{fmt.Errorf("%s: %w", pos, err)}
	}
	lb := labels.NewBuilder(labels.FromMap(g.Labels))
	for k, v := range rr.Labels {
		lb.Set(k, v)
	}
	r := &Rule{
		Alert: rr.Alert, Record: rr.Record, Expr: rr.Expr,
		For: time.Duration(rr.For), KeepFiringFor: time.Duration(rr.KeepFiringFor),
		Labels: lb.Labels(), Annotations: labels.FromMap(rr.Annotations),
		File: g.File, Line: pos.Line, Group: g.Name,
		retention: exprRetention(expr, g.QueryOffset),
		expr:      expr,
	}
	r.deps, r.anyDep, r.hasRange = selectors(expr)
	var probs []error
	if r.Alert != "" {
		r.threshold = exprThreshold(expr)
		if err := checkThresholdAnnotation(rr.Annotations["threshold"], r.threshold); err != nil {
			probs = append(probs, fmt.Errorf("%s: group %q, rule %d, %q: annotation threshold: %w (tokpulse-agent shows it in alert texts; Prometheus does not read it)", pos, g.Name, ri+1, r.Alert, err))
		}
	}
	for _, m := range []map[string]string{rr.Labels, rr.Annotations} {
		for _, v := range m {
			if strings.Contains(v, "query") {
				r.templatesQuery = true
				r.retention.merge(templateRetention(v, p))
			}
		}
	}
	if r.Alert == "" {
		return r, probs
	}
	sev, ok := rr.Labels["severity"]
	if !ok {
		sev, ok = g.Labels["severity"]
	}
	switch {
	case !ok:
		probs = append(probs, fmt.Errorf("%s: group %q, rule %d, %q: %s: the label \"severity\" is missing; add severity: P1, P2, P3 or P4 under labels: (the runbook's incident classes)", pos, g.Name, ri+1, r.Alert, severityRequirement))
	case !alert.Severity(sev).Valid():
		probs = append(probs, fmt.Errorf("%s: group %q, rule %d, %q: %s: severity %q is not one of them; write P1, P2, P3 or P4", lines.severity(gi, ri, pos), g.Name, ri+1, r.Alert, severityRequirement, sev))
	default:
		r.Severity = alert.Severity(sev)
	}
	return r, probs
}

// selectors returns the metric names expr reads, whether some selector
// names none, and whether it reads a range.
func selectors(expr parser.Expr) (names []string, any, hasRange bool) {
	seen := map[string]bool{}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch x := n.(type) {
		case *parser.MatrixSelector, *parser.SubqueryExpr:
			hasRange = true
		case *parser.VectorSelector:
			if name := selectorName(x); name == "" {
				any = true
			} else if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
		return nil
	})
	slices.Sort(names)
	return names, any, hasRange
}

// exprThreshold returns the comparison of expr with a number, which is
// the threshold its alerts cross: "> 80" of `100 * used / total > 80`, of
// `x > 80 and y == 0` (the left side of and/unless filters), and of an
// or whose two sides compare alike. nil when there is none (a comparison
// of two series, a bool modifier, an absent()).
func exprThreshold(expr parser.Expr) *alert.Threshold {
	switch e := expr.(type) {
	case *parser.ParenExpr:
		return exprThreshold(e.Expr)
	case *parser.BinaryExpr:
		switch e.Op {
		case parser.LAND, parser.LUNLESS:
			return exprThreshold(e.LHS)
		case parser.LOR:
			l, r := exprThreshold(e.LHS), exprThreshold(e.RHS)
			if l != nil && r != nil && *l == *r {
				return l
			}
			return nil
		}
		if !e.Op.IsComparisonOperator() || e.ReturnBool {
			return nil
		}
		if v, ok := numberLiteral(e.RHS); ok {
			return &alert.Threshold{Op: e.Op.String(), Value: v}
		}
		if v, ok := numberLiteral(e.LHS); ok {
			// 80 < x is x > 80: the alert's value is the series'.
			flip := map[string]string{">": "<", "<": ">", ">=": "<=", "<=": ">=", "==": "==", "!=": "!="}
			return &alert.Threshold{Op: flip[e.Op.String()], Value: v}
		}
	}
	return nil
}

// numberLiteral returns the value of a number written in an expression
// (80, (80), -5).
func numberLiteral(e parser.Expr) (float64, bool) {
	switch x := e.(type) {
	case *parser.NumberLiteral:
		return x.Val, true
	case *parser.ParenExpr:
		return numberLiteral(x.Expr)
	case *parser.UnaryExpr:
		if v, ok := numberLiteral(x.Expr); ok && x.Op == parser.SUB {
			return -v, true
		}
	}
	return 0, false
}

// checkThresholdAnnotation checks a rule's "threshold" annotation: an
// operator and a number, the same as the expression's own comparison when
// it has one, so that an alert text never shows a threshold the rule does
// not apply (after an edit of one and not the other). A templated one is
// checked when it is expanded, where it can only be shown as written.
func checkThresholdAnnotation(ann string, fromExpr *alert.Threshold) error {
	if ann == "" || strings.Contains(ann, "{{") {
		return nil
	}
	t, err := alert.ParseThreshold(ann)
	if err != nil {
		return err
	}
	if fromExpr != nil && t != *fromExpr {
		return fmt.Errorf("%q differs from the expression's comparison %q; make them agree", ann, fromExpr.String())
	}
	return nil
}

// position is a place in a rule file, printed as rulefmt prints one.
type position struct{ Line, Column int }

func (p position) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Column) }

func nodePos(n *yaml.Node) position { return position{n.Line, n.Column} }

// lineIndex maps groups and rules to where they start in the file.
type lineIndex struct {
	groups   []groupPos
	rules    [][]position
	sevLines [][]position
}

type groupPos struct {
	name string
	pos  position
}

func (l lineIndex) rule(g, r int) position {
	if g < len(l.rules) && r < len(l.rules[g]) {
		return l.rules[g][r]
	}
	return position{}
}

func (l lineIndex) severity(g, r int, fallback position) position {
	if g < len(l.sevLines) && r < len(l.sevLines[g]) && l.sevLines[g][r].Line > 0 {
		return l.sevLines[g][r]
	}
	return fallback
}

// locate puts a position on the rulefmt errors that lack one or say
// "0:0:": rulefmt decodes its position nodes with a YAML library that
// leaves some empty (a repeated or empty group name, a rule with neither
// record nor alert) and has none for labels, so the operator would be
// told line 0 or nothing. The position comes from the index instead: the
// group, or the rule, the error names.
func (l lineIndex) locate(err error) error {
	msg := err.Error()
	var rerr *rulefmt.Error
	if errors.As(err, &rerr) && (strings.HasPrefix(msg, "0:0: ") || strings.HasPrefix(msg, "group ")) {
		// A rule's error with no position, or an empty one: the rule's.
		rest := strings.TrimPrefix(strings.TrimPrefix(msg, "0:0: "), "0:0: ")
		for gi, g := range l.groups {
			if g.name == rerr.Group {
				if pos := l.rule(gi, rerr.Rule-1); pos.Line > 0 {
					return fmt.Errorf("%s: %s", pos, rest)
				}
				break
			}
		}
		return err
	}
	if !strings.HasPrefix(msg, "0:0: ") {
		return err
	}
	rest := strings.TrimPrefix(msg, "0:0: ")
	switch {
	case strings.HasPrefix(rest, "groupname: "):
		// `groupname: "x" is repeated in the same file`: the second one.
		seen := map[string]bool{}
		for _, g := range l.groups {
			if seen[g.name] && strings.HasPrefix(rest, fmt.Sprintf("groupname: %q ", g.name)) {
				return fmt.Errorf("%s: %s", g.pos, rest)
			}
			seen[g.name] = true
		}
	case strings.HasPrefix(rest, "Groupname must not be empty"):
		for _, g := range l.groups {
			if g.name == "" {
				return fmt.Errorf("%s: %s", g.pos, rest)
			}
		}
	}
	return err
}

// ruleLines finds where every group, rule and severity label starts in
// the YAML tree; rulefmt keeps no positions for labels.
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
		var rl, sl []position
		name := ""
		if n := mapValue(g, "name"); n != nil {
			name = n.Value
		}
		idx.groups = append(idx.groups, groupPos{name, nodePos(g)})
		if rules := mapValue(g, "rules"); rules != nil {
			for _, r := range rules.Content {
				rl = append(rl, nodePos(r))
				var pos position
				if lb := mapValue(r, "labels"); lb != nil {
					if s := mapValue(lb, "severity"); s != nil {
						pos = nodePos(s)
					}
				}
				sl = append(sl, pos)
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
