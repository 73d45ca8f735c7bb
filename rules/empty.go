package rules

import (
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// The shipped rule pack names every subsystem a TokPulse host may have:
// probes, checks, units, processes, log patterns. A host without some of
// them has no series of those names, and a rule that reads only absent
// names evaluates to an empty vector at every evaluation, through the
// whole PromQL engine (a query costs a fixed ~20 µs: parsing copies,
// preprocessing walks, spans, the querier). provablyEmpty decides, on the
// parsed tree and the store's names alone, when that result is certain,
// so that the evaluator can take the empty vector without the engine.
// It is deliberately conservative: anything it does not know (a function
// that makes series out of nothing, like absent or vector; a non-literal
// parameter that could fail; a selector without a metric name) means "not
// provably empty", and the engine evaluates as before. TestProvablyEmpty
// holds every "empty" verdict to the engine's own result.

// provablyEmpty reports whether e yields an empty vector, and no error,
// at any evaluation time over a store in which has(name) is false for
// the metric names it reads.
func provablyEmpty(e parser.Expr, has func(name string) bool) bool {
	switch n := e.(type) {
	case *parser.VectorSelector:
		name := selectorName(n)
		return name != "" && !has(name)
	case *parser.MatrixSelector:
		return provablyEmpty(n.VectorSelector, has)
	case *parser.SubqueryExpr:
		return provablyEmpty(n.Expr, has)
	case *parser.ParenExpr:
		return provablyEmpty(n.Expr, has)
	case *parser.StepInvariantExpr:
		return provablyEmpty(n.Expr, has)
	case *parser.UnaryExpr:
		return n.Expr.Type() != parser.ValueTypeScalar && provablyEmpty(n.Expr, has)
	case *parser.AggregateExpr:
		// Every aggregation of nothing is nothing; a parameter other than
		// a literal (topk(scalar(x), ...)) could fail, and is left to the
		// engine.
		return (n.Param == nil || constant(n.Param)) && provablyEmpty(n.Expr, has)
	case *parser.BinaryExpr:
		return binaryEmpty(n, has)
	case *parser.Call:
		return callEmpty(n, has)
	}
	return false
}

func binaryEmpty(n *parser.BinaryExpr, has func(string) bool) bool {
	lv, rv := n.LHS.Type() != parser.ValueTypeScalar, n.RHS.Type() != parser.ValueTypeScalar
	switch {
	case !lv && !rv:
		return false // a scalar, not a vector
	case n.Op == parser.LOR:
		return provablyEmpty(n.LHS, has) && provablyEmpty(n.RHS, has)
	case n.Op == parser.LUNLESS:
		return provablyEmpty(n.LHS, has)
	case n.Op == parser.LAND:
		return provablyEmpty(n.LHS, has) || provablyEmpty(n.RHS, has)
	case lv && rv:
		// Arithmetic and comparison between vectors output only matched
		// pairs, with any matching modifiers.
		return provablyEmpty(n.LHS, has) || provablyEmpty(n.RHS, has)
	case lv:
		return constant(n.RHS) && provablyEmpty(n.LHS, has)
	default:
		return constant(n.LHS) && provablyEmpty(n.RHS, has)
	}
}

// callEmpty: a stable function returning a vector made, series by
// series, from its one vector or range argument, the others literals.
func callEmpty(n *parser.Call, has func(string) bool) bool {
	f := n.Func
	// absent and absent_over_time make a series out of nothing.
	if f == nil || f.Experimental || f.ReturnType != parser.ValueTypeVector || f.Name == "absent" || f.Name == "absent_over_time" {
		return false
	}
	var series parser.Expr
	for _, a := range n.Args {
		switch a.Type() {
		case parser.ValueTypeVector, parser.ValueTypeMatrix:
			if series != nil {
				return false
			}
			series = a
		default:
			if !constant(a) {
				return false
			}
		}
	}
	return series != nil && provablyEmpty(series, has)
}

// constant reports whether e is a number or string literal, possibly in
// parentheses or negated: evaluating it cannot fail.
func constant(e parser.Expr) bool {
	switch n := e.(type) {
	case *parser.NumberLiteral, *parser.StringLiteral:
		return true
	case *parser.ParenExpr:
		return constant(n.Expr)
	case *parser.UnaryExpr:
		return constant(n.Expr)
	case *parser.StepInvariantExpr:
		return constant(n.Expr)
	}
	return false
}

// selectorName is the metric name a selector requires, "" if none.
func selectorName(n *parser.VectorSelector) string {
	for _, m := range n.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}
