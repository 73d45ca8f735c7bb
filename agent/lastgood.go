package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	rulepack "github.com/tokpulse/tokpulse-agent/packaging/rules"
)

// The last good configuration: a copy of the configuration file and of the
// rule files that last loaded, kept in the state directory so that a typo
// in /etc never leaves the host unmonitored. At start, a configuration on
// disk that does not load is replaced by this copy (docs/configuration.md,
// "The last good configuration").
const (
	lastGoodDir      = "last-good"
	lastGoodConfig   = "agent.yaml"
	lastGoodManifest = "manifest.json"
)

// manifest describes a last good copy.
type manifest struct {
	// ConfigFile is the configuration file it is a copy of.
	ConfigFile string    `json:"config_file"`
	SavedAt    time.Time `json:"saved_at"`
	// RuleFiles map each rule file that loaded to its copy (relative to
	// the last good directory); built-in files are kept by name.
	RuleFiles []ruleCopy `json:"rule_files"`
}

type ruleCopy struct {
	Path string `json:"path"`
	Copy string `json:"copy,omitempty"`
}

// saveLastGood writes src and the rule files rs loaded as the last good
// configuration in stateDir, replacing the previous copy at once (a new
// directory renamed over the old). An unchanged configuration is not
// written again.
func saveLastGood(stateDir string, src *configSource, ruleFiles []string, ruleData map[string][]byte, now time.Time) error {
	dir := filepath.Join(stateDir, lastGoodDir)
	m := manifest{ConfigFile: absConfigFile(src.file), SavedAt: now.UTC()}
	files := map[string][]byte{lastGoodConfig: src.data}
	for i, f := range ruleFiles {
		if rulepack.IsBuiltin(f) {
			m.RuleFiles = append(m.RuleFiles, ruleCopy{Path: f})
			continue
		}
		c := filepath.Join("rules", fmt.Sprintf("%03d-%s", i, filepath.Base(f)))
		m.RuleFiles = append(m.RuleFiles, ruleCopy{Path: f, Copy: c})
		files[c] = ruleData[f]
	}
	if same(dir, m, files) {
		return nil
	}
	tmp := dir + ".new"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Join(tmp, "rules"), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	files[lastGoodManifest] = data
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o600); err != nil {
			return err
		}
	}
	old := dir + ".old"
	_ = os.RemoveAll(old)
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// same reports whether dir already holds m's files with the same content.
func same(dir string, m manifest, files map[string][]byte) bool {
	var cur manifest
	data, err := os.ReadFile(filepath.Join(dir, lastGoodManifest))
	if err != nil || json.Unmarshal(data, &cur) != nil || cur.ConfigFile != m.ConfigFile || len(cur.RuleFiles) != len(m.RuleFiles) {
		return false
	}
	for i := range cur.RuleFiles {
		if cur.RuleFiles[i] != m.RuleFiles[i] {
			return false
		}
	}
	for name, b := range files {
		have, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(have, b) {
			return false
		}
	}
	return true
}

// loadLastGood reads the last good configuration from stateDir as a source
// whose rule files are the copies.
func loadLastGood(stateDir, configFile string) (*configSource, error) {
	dir := filepath.Join(stateDir, lastGoodDir)
	data, err := os.ReadFile(filepath.Join(dir, lastGoodManifest))
	if err != nil {
		return nil, fmt.Errorf("no last good configuration in %s: %w", dir, err)
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("the last good configuration's manifest %s is corrupt: %w", filepath.Join(dir, lastGoodManifest), err)
	}
	// A copy stands in only for the file it is a copy of: the state
	// directory may hold the copy of another configuration (the embedded
	// default of an earlier "tokpulse-agent run", or a file since renamed),
	// and running that instead of refusing would monitor with rules and
	// outputs nobody asked this configuration for.
	if want := absConfigFile(configFile); absConfigFile(m.ConfigFile) != want {
		return nil, fmt.Errorf("the last good configuration in %s is a copy of %s, not of %s", dir, displayName(m.ConfigFile), displayName(configFile))
	}
	cfgPath := filepath.Join(dir, lastGoodConfig)
	body, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("reading the last good configuration: %w", err)
	}
	src := &configSource{
		file: m.ConfigFile, data: body, lastGood: true, savedAt: m.SavedAt,
		name: fmt.Sprintf("%s (last good copy of %s)", cfgPath, displayName(m.ConfigFile)),
	}
	for _, r := range m.RuleFiles {
		if r.Copy == "" {
			src.ruleGlobs = append(src.ruleGlobs, r.Path)
			continue
		}
		src.ruleGlobs = append(src.ruleGlobs, filepath.Join(dir, r.Copy))
	}
	return src, nil
}

// absConfigFile is file as an absolute, clean path ("" for the embedded
// default), so that a copy saved under one spelling of a path is found
// under another.
func absConfigFile(file string) string {
	if file == "" {
		return ""
	}
	if abs, err := filepath.Abs(file); err == nil {
		return abs
	}
	return filepath.Clean(file)
}

func displayName(file string) string {
	if file == "" {
		return DefaultConfigName
	}
	return file
}

// guessStateDir finds where the state directory of a configuration that
// does not load is: its agent.state_dir if that much can be read, else the
// default. The last good configuration lives there.
func guessStateDir(data []byte) string {
	var partial struct {
		Agent struct {
			StateDir string `yaml:"state_dir"`
		} `yaml:"agent"`
	}
	if err := yaml.Unmarshal(data, &partial); err == nil && filepath.IsAbs(partial.Agent.StateDir) {
		return partial.Agent.StateDir
	}
	return defaultStateDir()
}

// problemLines splits a load error into its problems, one per line, for the
// log and the tokpulse_agent_config_problem series.
func problemLines(err error) []string {
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
