package agent

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"

	rulepack "github.com/tokpulse/tokpulse-agent/packaging/rules"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/rules"
)

// SelfRules is the rule file of the agent's own alerts (its configuration
// refused, its state file damaged), built into the binary and always
// loaded, whatever rule_files says: an agent that cannot trust its own
// configuration must still be able to say so.
const SelfRules = rulepack.SelfRules

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

// loadRules loads the rule files globs name, the pack built into the binary
// ("builtin:...", packaging/rules) included: the one place that hands the
// pack to the rules package.
func loadRules(globs []string, logger *slog.Logger) (*rules.RuleSet, error) {
	return rules.Load(globs, rules.LoadOptions{Pack: rulepack.Pack{}}, logger)
}

// withSelfRules adds the agent's own rules to globs.
func withSelfRules(globs []string) []string {
	if slices.Contains(globs, SelfRules) {
		return globs
	}
	return append(slices.Clone(globs), SelfRules)
}

// UnmatchedRuleGlobs returns the rule_files globs of cfg that match no
// file, for check: empty are those whose directory exists (an empty
// drop-in directory, normal), missing those whose directory does not (a
// typo, worth a warning).
func UnmatchedRuleGlobs(cfg *Config, configFile string) (empty, missing []string) {
	for _, g := range rules.UnmatchedGlobs(ruleGlobs(cfg, configFile), rulepack.Pack{}) {
		if rules.GlobDirMissing(g) {
			missing = append(missing, g)
		} else {
			empty = append(empty, g)
		}
	}
	return empty, missing
}

// CheckRules loads every rule file of cfg as the daemon would (the agent's
// own rules included), for `tokpulse-agent check`. It returns the files and
// the number of rules, or an error listing every problem as
// "file:line: ...".
func CheckRules(cfg *Config, configFile string) ([]string, int, error) {
	rs, err := loadRules(withSelfRules(ruleGlobs(cfg, configFile)), nil)
	if err != nil {
		return nil, 0, err
	}
	return rs.Files, rs.Rules(), nil
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
	resp.Data.Alerts = a.tracker.Alerts()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(resp)
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
