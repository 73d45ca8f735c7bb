package rules

import (
	"slices"
	"strings"
	"text/template/parse"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/tokpulse/tokpulse-agent/rules/memstore"
)

// read is what one selector of a rule reads: the series its matchers
// select, from back before the evaluation time up to it. The store keeps,
// for every series, the samples the selectors that match it read, plus the
// newest sample before that (what an instant lookup finds within the
// lookback delta); of a series that no selector reads over time, only the
// newest sample.
type read struct {
	matchers []*labels.Matcher
	// back is how far before the evaluation time the selector reads: its
	// range (0 for an instant selector), its offset, the ranges and offsets
	// of the subqueries around it and the group's query_offset.
	back time.Duration
}

// Retention is what the loaded rules read from the store. The zero value
// reads nothing.
type Retention struct {
	reads []read
	// all is set when some rule reads what cannot be known from its text
	// (a template calling query with a computed string): every series is
	// then kept for the longest back.
	all bool
	// longest is the longest back of all reads.
	longest time.Duration
}

// merge adds o's reads to r.
func (r *Retention) merge(o Retention) {
	r.reads = append(r.reads, o.reads...)
	r.all = r.all || o.all
	r.longest = max(r.longest, o.longest)
}

// Keep returns how far back a series with lset is read: the longest back
// of the reads that select it, 0 when only its newest sample is (or none).
// It implements memstore.Retention.
func (r Retention) Keep(lset labels.Labels) time.Duration {
	if r.all {
		return r.longest
	}
	var back time.Duration
	for _, rd := range r.reads {
		if rd.back > back && memstore.Matches(lset, rd.matchers) {
			back = rd.back
		}
	}
	return back
}

// Longest is the longest back of all reads.
func (r Retention) Longest() time.Duration { return r.longest }

// KeepsAll reports whether some rule may read any series.
func (r Retention) KeepsAll() bool { return r.all }

// ReadsPrefix reports whether some rule may read a series whose name
// starts with prefix, judging by the metric-name matchers alone: a
// selector with no name, or a name regex, may read anything.
func (r *Retention) ReadsPrefix(prefix string) bool {
	if r.all {
		return true
	}
	for _, rd := range r.reads {
		m := nameMatcher(rd.matchers)
		if m == nil || m.Type != labels.MatchEqual || strings.HasPrefix(m.Value, prefix) {
			return true
		}
	}
	return false
}

func nameMatcher(ms []*labels.Matcher) *labels.Matcher {
	for _, m := range ms {
		if m.Name == model.MetricNameLabel {
			return m
		}
	}
	return nil
}

// exprRetention returns what expr reads when evaluated with the given
// query offset. A selector with an @ modifier of a fixed time is sized as
// if it had none: the store never kept history beyond its window, so such
// a selector only ever saw what a plain one sees.
func exprRetention(expr parser.Expr, offset time.Duration) Retention {
	var r Retention
	parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		back := offset + max(vs.OriginalOffset, 0)
		for i, p := range path {
			switch x := p.(type) {
			case *parser.SubqueryExpr:
				back += x.Range + max(x.OriginalOffset, 0)
			case *parser.MatrixSelector:
				// A matrix selector is the direct parent of its vector
				// selector.
				if i == len(path)-1 {
					back += x.Range
				}
			}
		}
		r.reads = append(r.reads, read{matchers: slices.Clone(vs.LabelMatchers), back: back})
		r.longest = max(r.longest, back)
		return nil
	})
	return r
}

// templateRetention returns what the query calls of a label or annotation
// template read. A call whose argument is not a string literal (or a
// literal that does not parse) may read anything: the result has all set.
func templateRetention(text string, p parser.Parser) Retention {
	t := parse.New("template")
	t.Mode = parse.SkipFuncCheck
	trees := map[string]*parse.Tree{}
	if _, err := t.Parse(text, "{{", "}}", trees); err != nil {
		// rulefmt validated every template already; this cannot happen
		// for a loaded rule.
		return Retention{all: true}
	}
	w := &queryWalker{p: p}
	// The template itself and any it {{define}}s.
	trees[t.Name] = t
	for _, tr := range trees {
		if tr.Root != nil {
			w.walk(tr.Root)
		}
	}
	return w.r
}

// queryWalker collects the retention of the query calls of a template.
type queryWalker struct {
	p parser.Parser
	r Retention
}

func (w *queryWalker) walk(n parse.Node) {
	switch x := n.(type) {
	case *parse.ListNode:
		if x == nil {
			return
		}
		for _, c := range x.Nodes {
			w.walk(c)
		}
	case *parse.ActionNode:
		w.pipe(x.Pipe)
	case *parse.PipeNode:
		w.pipe(x)
	case *parse.IfNode:
		w.branch(&x.BranchNode)
	case *parse.RangeNode:
		w.branch(&x.BranchNode)
	case *parse.WithNode:
		w.branch(&x.BranchNode)
	case *parse.TemplateNode:
		w.pipe(x.Pipe)
	}
}

func (w *queryWalker) branch(b *parse.BranchNode) {
	w.pipe(b.Pipe)
	w.walk(b.List)
	w.walk(b.ElseList)
}

func (w *queryWalker) pipe(pn *parse.PipeNode) {
	if pn == nil {
		return
	}
	for i, c := range pn.Cmds {
		for _, a := range c.Args {
			w.walk(a)
		}
		if len(c.Args) == 0 {
			continue
		}
		if id, ok := c.Args[0].(*parse.IdentifierNode); ok && id.Ident == "query" {
			w.query(queryArg(pn, i))
		}
	}
}

// queryArg is the string literal a query call reads: query "expr", or
// "expr" | query. nil when it is anything else.
func queryArg(pn *parse.PipeNode, i int) *parse.StringNode {
	c := pn.Cmds[i]
	var lit *parse.StringNode
	switch {
	case len(c.Args) == 2:
		lit, _ = c.Args[1].(*parse.StringNode)
	case len(c.Args) == 1 && i > 0 && len(pn.Cmds[i-1].Args) == 1:
		lit, _ = pn.Cmds[i-1].Args[0].(*parse.StringNode)
	}
	return lit
}

// query adds what the query of lit reads; a query that cannot be known
// from the text (nil lit, or one that does not parse) may read anything.
func (w *queryWalker) query(lit *parse.StringNode) {
	if lit == nil {
		w.r.all = true
		return
	}
	expr, err := w.p.ParseExpr(lit.Text)
	if err != nil {
		w.r.all = true
		return
	}
	w.r.merge(exprRetention(expr, 0))
}
