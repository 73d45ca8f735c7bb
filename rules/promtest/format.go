package promtest

import (
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// labelsAndAnnotations is one alert as a test compares it. The field
// names are the JSON keys of --diff's output.
type labelsAndAnnotations struct {
	Labels      labels.Labels
	Annotations labels.Labels
}

func (la labelsAndAnnotations) String() string {
	return "Labels:" + la.Labels.String() + "\nAnnotations:" + la.Annotations.String()
}

// alertList sorts by labels, then annotations, and prints each alert
// numbered with its labels and annotations on lines of their own:
//
//	[
//	0:
//	  Labels:{alertname="Down", job="x"}
//	  Annotations:{}
//	]
type alertList []labelsAndAnnotations

func (l alertList) Len() int      { return len(l) }
func (l alertList) Swap(i, j int) { l[i], l[j] = l[j], l[i] }
func (l alertList) Less(i, j int) bool {
	if d := labels.Compare(l[i].Labels, l[j].Labels); d != 0 {
		return d < 0
	}
	return labels.Compare(l[i].Annotations, l[j].Annotations) < 0
}

func (l alertList) equal(o alertList) bool {
	if len(l) != len(o) {
		return false
	}
	for i := range l {
		if !labels.Equal(l[i].Labels, o[i].Labels) || !labels.Equal(l[i].Annotations, o[i].Annotations) {
			return false
		}
	}
	return true
}

func (l alertList) String() string {
	if len(l) == 0 {
		return "[]"
	}
	var s strings.Builder
	s.WriteString("[\n0:" + indentLines("\n"+l[0].String(), "  "))
	for i, a := range l[1:] {
		s.WriteString(",\n" + strconv.Itoa(i+1) + ":" + indentLines("\n"+a.String(), "  "))
	}
	s.WriteString("\n]")
	return s.String()
}

// parsedSample is an expected or returned sample of an expression test.
type parsedSample struct {
	Labels labels.Labels
	Value  float64
	// Histogram is the native histogram in the series notation; when set,
	// Value is not shown.
	Histogram string
}

func (s parsedSample) String() string {
	if s.Histogram != "" {
		return s.Labels.String() + " " + s.Histogram
	}
	return s.Labels.String() + " " + strconv.FormatFloat(s.Value, 'E', -1, 64)
}

func samplesString(ss []parsedSample) string {
	if len(ss) == 0 {
		return "nil"
	}
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = s.String()
	}
	return strings.Join(parts, ", ")
}

// indentLines prefixes every line but the first with indent.
func indentLines(lines, indent string) string {
	return strings.ReplaceAll(lines, "\n", "\n"+indent)
}
