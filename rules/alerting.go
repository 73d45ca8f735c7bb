package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
)

// ResolvedRetention is how long a resolved alert stays visible in
// /api/v1/alerts and in the state file, as Prometheus keeps resolved alerts
// for 15 minutes.
const ResolvedRetention = 15 * time.Minute

// instance is one alert of an alerting rule (one label set), with the
// lifecycle fields of Prometheus' rules.Alert. It is also the record
// persisted in the state file, hence the JSON tags.
type instance struct {
	Fingerprint string            `json:"fingerprint"`
	Group       string            `json:"group"`
	Alertname   string            `json:"alertname"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Value       float64           `json:"value"`
	State       alert.State       `json:"state"`
	ActiveAt    time.Time         `json:"active_at"`
	FiredAt     time.Time         `json:"fired_at,omitzero"`
	ResolvedAt  time.Time         `json:"resolved_at,omitzero"`
	// KeepFiringSince is when the expression stopped returning the alert
	// while keep_firing_for held it firing.
	KeepFiringSince time.Time `json:"keep_firing_since,omitzero"`
	// Delivered reports that the resolution was handed to the sink; a
	// resolved alert is handed on until it was.
	Delivered bool               `json:"delivered,omitempty"`
	Evidence  []evidence.Section `json:"evidence,omitempty"`

	// dirty marks a change that must reach the state file.
	dirty bool
	// newlyFiring marks the evaluation in which the alert started firing,
	// when its evidence is taken.
	newlyFiring bool
}

// stateKey is the instance's key in the state file: the fingerprint
// within its group, since two groups may hold alerts with the same labels.
func (a *instance) stateKey() string { return a.Group + "/" + a.Fingerprint }

// fingerprint is a stable hash of a label set: it identifies an alert in
// the state file and towards delivery across restarts and versions.
func fingerprint(l labels.Labels) string {
	h := sha256.New()
	l.Range(func(x labels.Label) {
		h.Write([]byte(x.Name))
		h.Write([]byte{0xff})
		h.Write([]byte(x.Value))
		h.Write([]byte{0xfe})
	})
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// errDuplicateLabels is Prometheus' error for an expression that yields
// two samples with the same labels once __name__ is dropped.
var errDuplicateLabels = errors.New("vector contains metrics with the same labelset after applying alert labels")

// evalAlert applies one evaluation's result to the rule's alerts: new
// label sets become pending, pending ones fire after `for`, missing ones
// resolve unless keep_firing_for holds them. The semantics are those of
// Prometheus' rules.AlertingRule.Eval.
func (r *Rule) evalAlert(ctx context.Context, ts time.Time, res promql.Vector, query template.QueryFunc, ext templateEnv, limit int, logger *slog.Logger) error {
	seen := map[string]*instance{}
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
		fp := fingerprint(lset)
		var anns map[string]string
		// Templates are a pure function of labels and value unless they
		// query: an alert whose value did not change keeps its expanded
		// annotations, which saves most of an evaluation while it fires.
		if cur, ok := r.active[fp]; ok && cur.State != alert.StateResolved && cur.Value == smpl.F && !r.templatesQuery {
			anns = cur.Annotations
		} else {
			anns = map[string]string{}
			r.Annotations.Range(func(x labels.Label) { anns[x.Name] = expand(x.Value) })
		}
		if _, dup := seen[fp]; dup {
			return errDuplicateLabels
		}
		seen[fp] = &instance{
			Fingerprint: fp, Group: r.Group, Alertname: r.Alert,
			Labels: lset.Map(), Annotations: anns, Value: smpl.F,
			State: alert.StatePending, ActiveAt: ts, dirty: true,
		}
	}
	for fp, a := range seen {
		if cur, ok := r.active[fp]; ok && cur.State != alert.StateResolved {
			cur.Value = a.Value
			cur.Annotations = a.Annotations
			continue
		}
		r.active[fp] = a
	}
	active := 0
	for fp, a := range r.active {
		a.newlyFiring = false
		if _, ok := seen[fp]; !ok {
			keepFiring := false
			if a.State == alert.StateFiring && r.KeepFiringFor > 0 {
				if a.KeepFiringSince.IsZero() {
					a.KeepFiringSince = ts
					a.dirty = true
				}
				keepFiring = ts.Sub(a.KeepFiringSince) < r.KeepFiringFor
			}
			if a.State == alert.StatePending || (a.Delivered && !a.ResolvedAt.IsZero() && ts.Sub(a.ResolvedAt) > ResolvedRetention) {
				delete(r.active, fp)
			}
			if a.State != alert.StateResolved && !keepFiring {
				if a.State == alert.StatePending {
					// A pending alert that ends was never announced: it
					// vanishes without a resolution.
					a.State = alert.StateResolved
					a.Delivered = true
				} else {
					a.State = alert.StateResolved
				}
				a.ResolvedAt = ts
				a.dirty = true
			}
			if !keepFiring {
				continue
			}
		} else if !a.KeepFiringSince.IsZero() {
			a.KeepFiringSince = time.Time{}
			a.dirty = true
		}
		active++
		if a.State == alert.StatePending && ts.Sub(a.ActiveAt) >= r.For {
			a.State = alert.StateFiring
			a.FiredAt = ts
			a.newlyFiring = true
			a.dirty = true
		}
		// A reload that lengthened `for` sends a firing alert back to
		// pending, as Prometheus does.
		if a.State == alert.StateFiring && ts.Sub(a.ActiveAt) < r.For {
			a.State = alert.StatePending
			a.FiredAt = time.Time{}
			a.KeepFiringSince = time.Time{}
			a.dirty = true
		}
	}
	if limit > 0 && active > limit {
		for fp, a := range r.active {
			if a.State != alert.StateResolved {
				delete(r.active, fp)
			}
		}
		return fmt.Errorf("exceeded the group's limit of %d alerts with %d; raise limit: or make the expression select fewer series", limit, active)
	}
	return nil
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
