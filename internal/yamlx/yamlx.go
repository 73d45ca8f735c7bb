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
	"bytes"
	"errors"
	"fmt"
	"io"
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
	warnings Problems
	// byLine lists the paths of index by the line of their key, and
	// byValue the path of each value by its position; both are built on
	// first use, so that placing many errors stays linear in the file.
	byLine  map[int][]string
	byValue map[[2]int]string
	// walked marks the nodes walk has entered, so that an alias is
	// followed once rather than once per use (an alias bomb would
	// otherwise expand exponentially).
	walked map[*yaml.Node]bool
}

// Errorf records a problem with the key at path.
func (c *Checker) Errorf(path, format string, args ...any) {
	c.problems = append(c.problems, c.place(path, fmt.Sprintf(format, args...)))
}

// Warnf records a warning about the key at path: something that works but
// should be changed (a secret file others can read). Warnings do not make
// decoding fail.
func (c *Checker) Warnf(path, format string, args ...any) {
	c.warnings = append(c.warnings, c.place(path, fmt.Sprintf(format, args...)))
}

func (c *Checker) place(path, msg string) Problem {
	p := Problem{File: c.file, Key: path, Msg: msg}
	// A default that fails validation has no line of its own; point at the
	// closest enclosing key that the operator did write.
	for q := path; q != ""; q = parent(q) {
		if n, ok := c.index[q]; ok {
			p.Line, p.Column = n.Line, n.Column
			break
		}
	}
	return p
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

// MaxProblems bounds the problems one decode reports; a file with more
// (a generated file gone wrong) gets the first ones and a count of the rest.
const MaxProblems = 1000

// Decode parses data (read from file) into out, which must be a non-nil
// pointer, typically already holding the defaults. It returns Problems, or nil.
// When out implements Validator, Validate runs even after decoding errors (a
// value that failed to decode keeps its default), so that one run of
// `check` reports every problem in the file.
func Decode(file string, data []byte, out any) error {
	_, err := DecodeAll(file, data, out)
	return err
}

// DecodeAll is Decode that also returns the warnings Validate recorded
// with Warnf, whether or not decoding failed.
//
// Decoding is linear in the size of the file: yaml.v3 checks every mapping
// for duplicate keys by comparing each key with every later one, which
// took 51 s for a 4 MB agent.labels map; duplicates are found here with a
// hash set instead, and large mappings are handed to yaml.v3 in small
// pieces (see linearize).
func DecodeAll(file string, data []byte, out any) (Problems, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, Problems{syntaxProblem(file, err)}
	}
	c := &Checker{file: file, index: map[string]*yaml.Node{}, values: map[string]*yaml.Node{}, walked: map[*yaml.Node]bool{}}
	// A file of several documents ("---") would be read up to the first
	// one only, silently; the operator meant something else.
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, Problems{syntaxProblem(file, err)}
	case len(next.Content) > 0 && !isNull(next.Content[0]):
		return nil, Problems{{File: file, Line: separatorLine(data, next.Content[0].Line),
			Msg: "a second YAML document starts here; the file must hold one configuration: remove this \"---\" line and merge what follows into the document above (yaml would otherwise ignore it)"}}
	}
	if len(doc.Content) == 0 {
		// An empty file is a valid "all defaults" configuration.
		return validate(c, out)
	}
	root := doc.Content[0]
	walk(c, root, reflect.TypeOf(out), "")
	linearize(c, root, map[*yaml.Node]bool{})
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

// separatorLine finds the "---" line at or before line that starts a
// document.
func separatorLine(data []byte, line int) int {
	lines := bytes.Split(data, []byte("\n"))
	for l := min(line, len(lines)); l >= 1; l-- {
		if bytes.HasPrefix(lines[l-1], []byte("---")) {
			return l
		}
	}
	return line
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func validate(c *Checker, out any) (Problems, error) {
	if v, ok := out.(Validator); ok {
		v.Validate(c, "")
	}
	sortProblems(c.warnings)
	if len(c.problems) > 0 {
		sortProblems(c.problems)
		if n := len(c.problems); n > MaxProblems {
			c.problems = append(c.problems[:MaxProblems], Problem{File: c.file,
				Msg: fmt.Sprintf("%d more problems not shown; fix the ones above first", n-MaxProblems)})
		}
		return c.warnings, c.problems
	}
	return c.warnings, nil
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
		if path, ok := c.valueAt(p.Line, col); ok {
			p.Key, p.Column = path, c.index[path].Column
			return p
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
		for _, path := range c.onLine(line) {
			n := c.index[path]
			if n.Kind == yaml.ScalarNode && n.Value == value && strings.HasSuffix(path, "]") {
				if best == "" || n.Column < col {
					best, col = path, n.Column
				}
			}
		}
		if best != "" {
			return best, col
		}
	}
	for _, path := range c.onLine(line) {
		// Deepest key first; among keys on one line ("[200, 2xy]") the
		// first in the line, so that the answer does not depend on map
		// order.
		n := c.index[path]
		d, bd := strings.Count(path, ".")+strings.Count(path, "["), strings.Count(best, ".")+strings.Count(best, "[")
		if best == "" || d > bd || (d == bd && n.Column < col) {
			best, col = path, n.Column
		}
	}
	return best, col
}

// valueAt returns the path whose value is written at line and column.
func (c *Checker) valueAt(line, col int) (string, bool) {
	if c.byValue == nil {
		c.byValue = map[[2]int]string{}
		for path, n := range c.values {
			c.byValue[[2]int{n.Line, n.Column}] = path
		}
	}
	p, ok := c.byValue[[2]int{line, col}]
	return p, ok
}

// onLine returns the paths whose key is written on line.
func (c *Checker) onLine(line int) []string {
	if c.byLine == nil {
		c.byLine = map[int][]string{}
		for path, n := range c.index {
			c.byLine[n.Line] = append(c.byLine[n.Line], path)
		}
	}
	return c.byLine[line]
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
		if node == nil || c.walked[node] {
			return
		}
	}
	c.walked[node] = true
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

// chunkPairs is the most key/value pairs linearize leaves in one mapping.
// yaml.v3 compares every key of a mapping with every later one, so it
// costs chunkPairs/2 comparisons per key at most.
const chunkPairs = 64

// linearize prepares a parsed tree for yaml.v3 so that decoding it takes
// time linear in its size. In every mapping it reports a key written twice
// (at its second line, naming the first, as yaml.v3 would) and drops the
// repeat; a mapping of more than chunkPairs pairs is rewritten as a merge
// ("<<") of pieces of chunkPairs pairs, which yaml.v3 decodes into the
// same map or struct. The mapping's own merge keys come after the pieces,
// so that its own keys still win over merged ones, as YAML says. Nodes
// keep their lines, so every later error still points at the right line.
func linearize(c *Checker, n *yaml.Node, done map[*yaml.Node]bool) {
	if n == nil || done[n] {
		return
	}
	done[n] = true
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, ch := range n.Content {
			linearize(c, ch, done)
		}
		return
	case yaml.AliasNode:
		linearize(c, n.Alias, done)
		return
	case yaml.MappingNode:
	default:
		return
	}
	type key struct {
		kind  yaml.Kind
		value string
	}
	first := make(map[key]int, len(n.Content)/2)
	pairs := make([]*yaml.Node, 0, len(n.Content))
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		linearize(c, v, done)
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge") {
			merges = append(merges, v)
			continue
		}
		if k.Kind == yaml.ScalarNode {
			id := key{k.Kind, k.Value}
			if line, dup := first[id]; dup {
				c.problems = append(c.problems, Problem{File: c.file, Line: k.Line, Column: k.Column,
					Msg: fmt.Sprintf("key %q is already written at line %d; keep one of them", k.Value, line)})
				continue
			}
			first[id] = k.Line
		}
		pairs = append(pairs, k, v)
	}
	if len(pairs)/2 <= chunkPairs && len(pairs) == len(n.Content) {
		return
	}
	if len(pairs)/2 <= chunkPairs {
		n.Content = append(pairs, mergeContent(merges)...)
		return
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: n.Line, Column: n.Column}
	for i := 0; i < len(pairs); i += 2 * chunkPairs {
		end := min(i+2*chunkPairs, len(pairs))
		seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map",
			Line: pairs[i].Line, Column: pairs[i].Column, Content: pairs[i:end:end]})
	}
	// The user's own merges follow the pieces: earlier merge sources win.
	for _, m := range merges {
		if m.Kind == yaml.SequenceNode {
			seq.Content = append(seq.Content, m.Content...)
		} else {
			seq.Content = append(seq.Content, m)
		}
	}
	n.Content = []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!merge", Value: "<<", Line: n.Line, Column: n.Column}, seq}
}

// mergeContent turns merge values back into "<<" pairs; several merge keys
// in one mapping are themselves a duplicate, so they become one list.
func mergeContent(merges []*yaml.Node) []*yaml.Node {
	switch len(merges) {
	case 0:
		return nil
	case 1:
		return []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!merge", Value: "<<"}, merges[0]}
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, m := range merges {
		if m.Kind == yaml.SequenceNode {
			seq.Content = append(seq.Content, m.Content...)
		} else {
			seq.Content = append(seq.Content, m)
		}
	}
	return []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!merge", Value: "<<"}, seq}
}
