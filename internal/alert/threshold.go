package alert

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Threshold is the comparison an alert's value crossed: from the rule's
// "threshold" annotation ("> 80"), or else from its expression when that
// compares a series with a number (`… > 80`).
type Threshold struct {
	// Op is a PromQL comparison operator: >, >=, <, <=, == or !=.
	Op    string  `json:"op"`
	Value float64 `json:"value"`
}

// thresholdRE is an operator and a number, with an optional unit after it
// that the "unit" annotation says again ("> 80", "< 20 %", ">= 2s" reads
// as ">= 2").
var thresholdRE = regexp.MustCompile(`^\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*\S*\s*$`)

// ParseThreshold reads a "threshold" annotation: a comparison operator and
// a number, as the runbook writes its thresholds ("> 80", "< 20").
func ParseThreshold(s string) (Threshold, error) {
	m := thresholdRE.FindStringSubmatch(s)
	if m == nil {
		return Threshold{}, fmt.Errorf("%q is not a comparison; write an operator and a number, e.g. \"> 80\"", s)
	}
	v, err := strconv.ParseFloat(m[2], 64)
	if err != nil {
		return Threshold{}, fmt.Errorf("%q: %w", s, err)
	}
	return Threshold{Op: m[1], Value: v}, nil
}

// String writes the threshold as "> 80".
func (t Threshold) String() string { return t.Op + " " + FormatValue(t.Value) }

// StateTest reports whether the threshold tests a state (probe_success ==
// 0, a unit in state failed == 1) rather than a level: the value then only
// repeats the threshold, and the text leaves it out.
func (t Threshold) StateTest() bool { return t.Op == "==" || t.Op == "!=" }

// FormatValue writes a sample value for a person: at most three
// significant decimals, no exponent below a million, no trailing zeros
// (86.2, 2.41, 0.0123, 153, 12346).
func FormatValue(v float64) string {
	var s string
	switch a := math.Abs(v); {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'g', -1, 64)
	case a >= 1e6:
		return strconv.FormatFloat(v, 'g', 4, 64)
	case a >= 100:
		s = strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		s = strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		s = strconv.FormatFloat(v, 'f', 2, 64)
	case a == 0:
		return "0"
	default:
		s = strconv.FormatFloat(v, 'g', 3, 64)
		if strings.ContainsAny(s, "e") {
			return s
		}
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

// withUnit writes v followed by unit ("86.2 %", "2.41 s", "3").
func withUnit(v float64, unit string) string {
	if unit == "" {
		return FormatValue(v)
	}
	return FormatValue(v) + " " + unit
}
