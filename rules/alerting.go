package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/template"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// errDuplicateLabels is Prometheus' error for an expression that yields
// two samples with the same labels once __name__ is dropped.
var errDuplicateLabels = errors.New("vector contains metrics with the same labelset after applying alert labels")

// cachedAnnotations are an alert's annotations as last expanded, with the
// value they were expanded for.
type cachedAnnotations struct {
	value float64
	anns  map[string]string
}

// alertSamples turns one evaluation's result into the rule's alerts: the
// label set of each (rule labels and alertname applied) with its expanded
// annotations. The semantics are those of Prometheus'
// rules.AlertingRule.Eval; what happens to each alert over time is the
// incident tracker's.
func (r *Rule) alertSamples(ctx context.Context, ts time.Time, res promql.Vector, query template.QueryFunc, ext templateEnv, logger *slog.Logger) ([]alert.Sample, error) {
	out := make([]alert.Sample, 0, len(res))
	seen := make(map[string]bool, len(res))
	cache := make(map[string]cachedAnnotations, len(res))
	lb := labels.NewBuilder(labels.EmptyLabels())
	for _, smpl := range res {
		l := smpl.Metric.Map()
		tmplData := template.AlertTemplateData(l, ext.labels, ext.url, smpl)
		expand := func(text string) string {
			return expandTemplate(ctx, r.Alert, text, tmplData, ts, query, ext.parsedURL, logger)
		}
		lb.Reset(smpl.Metric)
		lb.Del(model.MetricNameLabel)
		r.Labels.Range(func(x labels.Label) { lb.Set(x.Name, expand(x.Value)) })
		lb.Set(labels.AlertName, r.Alert)
		lset := lb.Labels()
		fp := alert.Fingerprint(lset)
		if seen[fp] {
			return nil, errDuplicateLabels
		}
		seen[fp] = true
		// Templates are a pure function of labels and value unless they
		// query: an alert whose value did not change keeps its expanded
		// annotations, which saves most of an evaluation while it fires.
		var anns map[string]string
		if c, ok := r.annotations[fp]; ok && c.value == smpl.F && !r.templatesQuery {
			anns = c.anns
		} else {
			anns = make(map[string]string, r.Annotations.Len())
			r.Annotations.Range(func(x labels.Label) { anns[x.Name] = expand(x.Value) })
		}
		cache[fp] = cachedAnnotations{smpl.F, anns}
		out = append(out, alert.Sample{Labels: lset, Annotations: anns, Value: smpl.F})
	}
	r.annotations = cache
	return out, nil
}

// info describes the rule to the incident tracker.
func (r *Rule) info() alert.Rule {
	return alert.Rule{Group: r.Group, Name: r.Alert, File: r.File, Line: r.Line,
		For: r.For, KeepFiringFor: r.KeepFiringFor, Severity: r.Severity,
		Reads: r.deps, Threshold: r.threshold}
}

// templateEnv is what annotation templates see besides the sample.
type templateEnv struct {
	labels    map[string]string
	url       string
	parsedURL *url.URL
}

// expandTemplate expands one label or annotation template with the
// variables Prometheus defines ($labels, $value, $externalLabels,
// $externalURL). A broken template yields an error text, not a lost alert.
func expandTemplate(ctx context.Context, name, text string, data any, ts time.Time, query template.QueryFunc, u *url.URL, logger *slog.Logger) string {
	defs := "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	if !strings.Contains(text, "{{") {
		return text
	}
	tmpl := template.NewTemplateExpander(ctx, defs+text, "__alert_"+name, data,
		model.TimeFromUnixNano(ts.UnixNano()), query, u, nil)
	out, err := tmpl.Expand()
	if err != nil {
		logger.Warn("Expanding alert template failed", "alertname", name, "err", err)
		return fmt.Sprintf("<error expanding template: %s>", err)
	}
	return out
}
