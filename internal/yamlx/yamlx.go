// Package yamlx decodes operator-written YAML strictly and reports every
// problem at once, each with the file, line and dotted key it concerns and a
// hint of what to write instead.
//
// yaml.v3 alone stops strictness at the first custom unmarshaler and reports
// unknown keys with Go type names an operator cannot act on, so decoding here
// happens in three passes over one parsed node tree: a walk that checks every
// key against the target's yaml tags, yaml.v3's own decoding (whose type
// errors are kept and re-labelled), and the target's Validate method, which
// names keys by path and gets their positions from the walk.
package yamlx

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one mistake in a configuration file.
type Problem struct {
	File   string
	Line   int // 0 when the key was not written (a default failed validation)
	Column int
	Key    string // dotted path such as "logs[0].paths"; empty for syntax errors
	Msg    string
}

// String formats the problem as "file:line:col: key: message", the shape
// editors and CI logs turn into links.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Column > 0 {
			fmt.Fprintf(&b, ":%d", p.Column)
		}
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every mistake found in one file. It is an error.
type Problems []Problem

// Error lists the problems, one per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Validator is implemented by configuration types that check their values
// after decoding. path is the dotted key of the receiver ("" for the root).
type Validator interface {
	Validate(c *Checker, path string)
}

// Checker collects validation problems and places them at the line where the
// operator wrote the key.
type Checker struct {
	file     string
	index    map[string]*yaml.Node // dotted path → key node
	values   map[string]*yaml.Node // dotted path → value node
	problems Problems
}

// Errorf records a problem with the key at path.
func (c *Checker) Errorf(path, format string, args ...any) {
	p := Problem{File: c.file, Key: path, Msg: fmt.Sprintf(format, args...)}
	// A default that fails validation has no line of its own; point at the
	// closest enclosing key that the operator did write.
	for q := path; q != ""; q = parent(q) {
		if n, ok := c.index[q]; ok {
			p.Line, p.Column = n.Line, n.Column
			break
		}
	}
	c.problems = append(c.problems, p)
}

// Err reports whether any problem was recorded so far.
func (c *Checker) Err() bool { return len(c.problems) > 0 }

// Written reports whether the operator wrote the key at path.
func (c *Checker) Written(path string) bool {
	_, ok := c.index[path]
	return ok
}

// Join appends key to path with a dot.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Index returns the path of element i of the list at path.
func Index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// Decode parses data (read from file) into out, which must be a non-nil
// pointer, typically already holding the defaults. It returns Problems, or nil.
// When out implements Validator, Validate runs even after decoding errors (a
// value that failed to decode keeps its default), so that one run of
// `check` reports every problem in the file.
func Decode(file string, data []byte, out any) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Problems{syntaxProblem(file, err)}
	}
	c := &Checker{file: file, index: map[string]*yaml.Node{}, values: map[string]*yaml.Node{}}
	if len(doc.Content) == 0 {
		// An empty file is a valid "all defaults" configuration.
		return validate(c, out)
	}
	root := doc.Content[0]
	walk(c, root, reflect.TypeOf(out), "")
	if err := root.Decode(out); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			c.problems = append(c.problems, Problem{File: file, Msg: err.Error()})
		} else {
			for _, msg := range te.Errors {
				c.problems = append(c.problems, c.typeProblem(msg))
			}
		}
	}
	return validate(c, out)
}

func validate(c *Checker, out any) error {
	if v, ok := out.(Validator); ok {
		v.Validate(c, "")
	}
	if len(c.problems) > 0 {
		sortProblems(c.problems)
		return c.problems
	}
	return nil
}

func sortProblems(ps Problems) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Column < ps[j].Column
	})
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

var columnRE = regexp.MustCompile(`^column (\d+): (.*)$`)

func syntaxProblem(file string, err error) Problem {
	msg := err.Error()
	p := Problem{File: file, Msg: msg}
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Msg = m[2] + " (check the indentation and quoting around this line)"
	}
	return p
}

var unmarshalRE = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (.*)$")

// typeProblem turns one of yaml.v3's "line N: ..." type errors into a Problem
// that names the key and says what kind of value belongs there.
func (c *Checker) typeProblem(msg string) Problem {
	p := Problem{File: c.file, Msg: msg}
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return p
	}
	p.Line, _ = strconv.Atoi(m[1])
	p.Msg = m[2]
	if cm := columnRE.FindStringSubmatch(p.Msg); cm != nil {
		// From Fail: the value's exact position is known.
		col, _ := strconv.Atoi(cm[1])
		p.Msg = cm[2]
		for path, n := range c.values {
			if n.Line == p.Line && n.Column == col {
				p.Key, p.Column = path, c.index[path].Column
				return p
			}
		}
	}
	value := ""
	u := unmarshalRE.FindStringSubmatch(p.Msg)
	if u != nil {
		value = u[2]
		p.Msg = fmt.Sprintf("%q is not %s", u[2], describeGoType(u[3]))
	}
	p.Key, p.Column = c.keyAtLine(p.Line, value)
	return p
}

// keyAtLine finds the key written on line that an error yaml.v3 reports by
// line alone is about: the list item holding value when there is one (as in
// "[200, 2xy]"), else the deepest key on the line.
func (c *Checker) keyAtLine(line int, value string) (string, int) {
	best, col := "", 0
	if value != "" {
		for path, n := range c.index {
			if n.Line == line && n.Kind == yaml.ScalarNode && n.Value == value && strings.HasSuffix(path, "]") {
				if best == "" || n.Column < col {
					best, col = path, n.Column
				}
			}
		}
		if best != "" {
			return best, col
		}
	}
	for path, n := range c.index {
		// Deepest key first; among keys on one line ("[200, 2xy]") the
		// first in the line, so that the answer does not depend on map
		// order.
		if n.Line != line {
			continue
		}
		d, bd := strings.Count(path, ".")+strings.Count(path, "["), strings.Count(best, ".")+strings.Count(best, "[")
		if best == "" || d > bd || (d == bd && n.Column < col) {
			best, col = path, n.Column
		}
	}
	return best, col
}

func describeGoType(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list (write it as [a, b] or one \"- item\" per line)"
	case strings.HasPrefix(t, "map["):
		return "a mapping of keys to values"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "string":
		return "a string"
	default:
		return "a mapping of keys (see docs/configuration.md)"
	}
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// walk checks node's keys against t and records every key's position.
func walk(c *Checker, node *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			return // yaml.v3 reports the type mismatch
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			if k.Value == "<<" {
				continue // merge keys are checked where they are defined
			}
			p := Join(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				if reflect.PointerTo(t).Implements(unmarshalerType) && len(fields) == 0 {
					continue
				}
				c.problems = append(c.problems, Problem{
					File: c.file, Line: k.Line, Column: k.Column, Key: p,
					Msg: unknownKeyMsg(k.Value, path, fields),
				})
				continue
			}
			c.index[p], c.values[p] = k, v
			walk(c, v, f, p)
		}
	case reflect.Slice, reflect.Array:
		if node.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range node.Content {
			p := Index(path, i)
			c.index[p], c.values[p] = item, item
			walk(c, item, t.Elem(), p)
		}
	case reflect.Map:
		if node.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			p := Join(path, k.Value)
			c.index[p], c.values[p] = k, v
			walk(c, v, t.Elem(), p)
		}
	}
}

// yamlFields maps each yaml key of struct t (following ",inline" fields) to
// the field's type.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			for k, v := range yamlFields(ft) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func unknownKeyMsg(key, path string, fields map[string]reflect.Type) string {
	valid := make([]string, 0, len(fields))
	for k := range fields {
		valid = append(valid, k)
	}
	sort.Strings(valid)
	where := "at the top level"
	if path != "" {
		where = "in " + path
	}
	msg := fmt.Sprintf("unknown key %q %s", key, where)
	if s := closest(key, valid); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return msg + " (valid keys: " + strings.Join(valid, ", ") + ")"
}

// closest returns the candidate within edit distance 2 of key, if any.
func closest(key string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := levenshtein(key, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Fail returns an error for a custom UnmarshalYAML that yaml.v3 collects with
// its own type errors instead of stopping at it, so that every problem in a
// file is reported in one run.
func Fail(node *yaml.Node, format string, args ...any) error {
	// The column lets Decode name the key even when several share a line
	// ({name: x, regexp: '('}).
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %s", node.Line, node.Column, fmt.Sprintf(format, args...))}}
}
