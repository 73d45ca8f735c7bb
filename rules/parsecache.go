package rules

import (
	"fmt"
	"sync"

	"github.com/prometheus/prometheus/promql/parser"
)

// parseCache is the engine's PromQL parser: it parses each expression
// once and hands the engine a fresh copy of the tree at every evaluation.
// The engine rewrites the tree it evaluates (step-invariant wrappers, @
// timestamps, the series a selector expanded to), so the cached tree is
// never given out itself. A rule's expression was parsed, its regular
// expressions compiled, at every evaluation before: a third of an
// evaluation round's CPU (docs/performance.md). Matchers are immutable and
// shared between copies, which also keeps their compiled regexps.
type parseCache struct {
	parser.Parser

	mu    sync.Mutex
	exprs map[string]parser.Expr
}

// maxParsed bounds the cache: rule expressions, plus whatever templates
// ask with query (which may build strings); once full, new strings are
// parsed every time, as before.
const maxParsed = 1024

func newParseCache(p parser.Parser) *parseCache {
	return &parseCache{Parser: p, exprs: map[string]parser.Expr{}}
}

// ParseExpr implements parser.Parser.
func (c *parseCache) ParseExpr(input string) (parser.Expr, error) {
	c.mu.Lock()
	e, ok := c.exprs[input]
	c.mu.Unlock()
	if ok {
		if cp, ok := cloneExpr(e); ok {
			return cp, nil
		}
	}
	e, err := c.Parser.ParseExpr(input)
	if err != nil {
		return e, err
	}
	// The engine gets a copy even now: the cached tree stays as parsed.
	cp, ok := cloneExpr(e)
	if !ok {
		return e, nil // a node cloneExpr does not know: never cached
	}
	c.mu.Lock()
	if len(c.exprs) < maxParsed {
		c.exprs[input] = e
	}
	c.mu.Unlock()
	return cp, nil
}

// cloneExpr copies every node of e; leaves that the engine never changes
// (matchers, functions, vector matching, strings) are shared. It reports
// false for a tree with a node type it does not know (a newer
// Prometheus), which is then parsed afresh every time.
func cloneExpr(e parser.Expr) (out parser.Expr, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			out, ok = nil, false
		}
	}()
	return clone(e), true
}

func clone(e parser.Expr) parser.Expr {
	switch n := e.(type) {
	case nil:
		return nil
	case *parser.AggregateExpr:
		c := *n
		c.Expr, c.Param = clone(n.Expr), clone(n.Param)
		return &c
	case *parser.BinaryExpr:
		c := *n
		c.LHS, c.RHS = clone(n.LHS), clone(n.RHS)
		return &c
	case *parser.Call:
		c := *n
		if n.Args != nil {
			c.Args = make(parser.Expressions, len(n.Args))
			for i, a := range n.Args {
				c.Args[i] = clone(a)
			}
		}
		return &c
	case *parser.DurationExpr:
		c := *n
		c.LHS, c.RHS = clone(n.LHS), clone(n.RHS)
		return &c
	case *parser.MatrixSelector:
		c := *n
		c.VectorSelector = clone(n.VectorSelector)
		c.RangeExpr = cloneDuration(n.RangeExpr)
		return &c
	case *parser.SubqueryExpr:
		c := *n
		c.Expr = clone(n.Expr)
		c.RangeExpr, c.OriginalOffsetExpr, c.StepExpr = cloneDuration(n.RangeExpr), cloneDuration(n.OriginalOffsetExpr), cloneDuration(n.StepExpr)
		c.Timestamp = cloneInt(n.Timestamp)
		return &c
	case *parser.NumberLiteral:
		c := *n
		return &c
	case *parser.StringLiteral:
		c := *n
		return &c
	case *parser.ParenExpr:
		c := *n
		c.Expr = clone(n.Expr)
		return &c
	case *parser.UnaryExpr:
		c := *n
		c.Expr = clone(n.Expr)
		return &c
	case *parser.StepInvariantExpr:
		c := *n
		c.Expr = clone(n.Expr)
		return &c
	case *parser.VectorSelector:
		c := *n
		c.OriginalOffsetExpr = cloneDuration(n.OriginalOffsetExpr)
		c.Timestamp = cloneInt(n.Timestamp)
		c.UnexpandedSeriesSet, c.Series = nil, nil
		return &c
	default:
		panic(fmt.Sprintf("rules: cannot copy PromQL node %T", e))
	}
}

func cloneDuration(d *parser.DurationExpr) *parser.DurationExpr {
	if d == nil {
		return nil
	}
	return clone(d).(*parser.DurationExpr)
}

func cloneInt(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
