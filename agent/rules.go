package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"

	rulepack "github.com/tokpulse/tokpulse-agent/packaging/rules"

	dto "github.com/prometheus/client_model/go"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/rules"
)

// ruleGlobs returns cfg's rule_files with relative globs resolved against
// the directory of the configuration file, as Prometheus resolves them.
func ruleGlobs(cfg *Config, configFile string) []string {
	out := make([]string, 0, len(cfg.RuleFiles))
	for _, g := range cfg.RuleFiles {
		if !filepath.IsAbs(g) && configFile != "" && !rulepack.IsBuiltin(g) {
			g = filepath.Join(filepath.Dir(configFile), g)
		}
		out = append(out, g)
	}
	return out
}

// UnmatchedRuleGlobs returns the rule_files globs of cfg that match no
// file, for a warning from check.
func UnmatchedRuleGlobs(cfg *Config, configFile string) []string {
	return rules.UnmatchedGlobs(ruleGlobs(cfg, configFile))
}

// CheckRules loads every rule file of cfg as the daemon would, for
// `tokpulse-agent check`. It returns the files and the number of rules, or
// an error listing every problem as "file:line: ...".
func CheckRules(cfg *Config, configFile string) ([]string, int, error) {
	groups, files, err := rules.LoadFiles(ruleGlobs(cfg, configFile), nil)
	if err != nil {
		return nil, 0, err
	}
	n := 0
	for _, g := range groups {
		n += len(g.Rules)
	}
	return files, n, nil
}

// newRules builds the rule manager and loads cfg's rule files.
func (a *Agent) newRules(cfg *Config) (*rules.Manager, error) {
	sink := a.opts.Sink
	if sink == nil {
		sink = a.AlertSink()
	}
	m := rules.NewManager(rules.Options{
		Logger:     a.logger.With("component", "rules"),
		Registerer: a.registry,
		State:      a.store,
		Sink:       sink,
		Policies:   cfg.Severities,
		Evidence: &rules.HostEvidence{
			Proc:      cfg.Agent.Paths.Proc,
			Rootfs:    cfg.Agent.Paths.Rootfs,
			Providers: a.evidenceProviders,
			Redactor:  evidence.NewRedactor(),
			Now:       a.opts.Now,
		},
		Interval:       cfg.Agent.Interval.D(),
		ExternalLabels: externalLabels(cfg),
		AlertLabels:    cfg.Agent.Labels,
	})
	if err := m.Load(ruleGlobs(cfg, a.opts.ConfigFile)); err != nil {
		return nil, err
	}
	return m, nil
}

// evidenceProviders lists the collectors that keep evidence.
func (a *Agent) evidenceProviders() []evidence.Provider {
	var out []evidence.Provider
	for _, m := range a.currentPipeline().set.Members() {
		if p, ok := m.Collector.(evidence.Provider); ok {
			out = append(out, p)
		}
	}
	return out
}

// evaluateRules feeds one gather to the rules' store and evaluates them.
// It runs in the gather loop, bounded by the interval.
func (a *Agent) evaluateRules(mfs []*dto.MetricFamily) {
	now := a.opts.Now()
	a.rules.Ingest(now, mfs)
	ctx, cancel := context.WithTimeout(context.Background(), a.Config().Agent.Interval.D()*8/10)
	defer cancel()
	// Errors are logged and counted by the manager; the loop goes on.
	_ = a.rules.Evaluate(ctx, now)
}

// alertsResponse is the body of /api/v1/alerts, shaped like Prometheus'
// own /api/v1/alerts.
type alertsResponse struct {
	Status string `json:"status"`
	Data   struct {
		Alerts []alert.Alert `json:"alerts"`
	} `json:"data"`
}

func (a *Agent) serveAlerts(w http.ResponseWriter, _ *http.Request) {
	var resp alertsResponse
	resp.Status = "success"
	resp.Data.Alerts = a.rules.Alerts(a.opts.Now())
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(resp)
}

// reloadRules applies cfg's rules and severities; on error the running
// rules stay.
func (a *Agent) reloadRules(cfg *Config) error {
	// The interval sizes the store's window, which Load computes.
	a.rules.SetInterval(cfg.Agent.Interval.D())
	if err := a.rules.Load(ruleGlobs(cfg, a.opts.ConfigFile)); err != nil {
		a.rules.SetInterval(a.Config().Agent.Interval.D())
		return err
	}
	a.rules.SetPolicies(cfg.Severities)
	a.rules.SetAlertLabels(cfg.Agent.Labels)
	return nil
}

// externalLabels are $externalLabels in rule templates: agent.labels and
// the host name.
func externalLabels(cfg *Config) map[string]string {
	out := map[string]string{"hostname": cfg.Agent.Hostname}
	for k, v := range cfg.Agent.Labels {
		out[k] = v
	}
	return out
}
