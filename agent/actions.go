package agent

import (
	"os"

	"github.com/tokpulse/tokpulse-agent/actions"
)

// CheckActions judges cfg's actions beyond their syntax, for `check`:
// against the alerts of the rules cfg loads (an unknown alertname is a
// warning) and the polkit policy found in policyDirs (a restart_unit it
// does not allow is a problem when the whole policy is readable). See
// actions.Check.
func CheckActions(cfg *Config, configFile string, policyDirs []string) (problems, warnings, notes []actions.Finding) {
	if len(cfg.Actions) == 0 {
		return nil, nil, nil
	}
	var names []string
	if rs, err := loadRules(withSelfRules(ruleGlobs(cfg, configFile)), nil); err == nil {
		for _, g := range rs.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					names = append(names, r.Alert)
				}
			}
		}
	}
	src := defaultConfigYAML
	if configFile != "" {
		if b, err := os.ReadFile(configFile); err == nil {
			src = b
		}
	}
	return actions.Check(cfg.Actions, names, actions.ReadPolicy(policyDirs), src)
}
