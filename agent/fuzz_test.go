package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseConfig decodes arbitrary agent.yaml files with the full
// validation `check` and `run` use: nothing may panic, hang or take
// time out of proportion to the input. Seeds: every configuration under
// testdata/, the embedded default and the shipped agent.yaml.
func FuzzParseConfig(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	files = append(files, "default.yaml", "../packaging/agent.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"", "---\n---\n", "agent: {labels: {a: b, a: c}}\n", "a: &a [*a, *a]\n",
		"web: {config_file: /dev/zero}\n", "rule_files: ['[']\n",
		"agent:\n  labels:\n    <<: {x: y}\n    x: z\n", "logs: [{name: a, paths: ['/x/*.log'], metrics: [{name: m, type: histogram, regexp: '(?P<v>\\d+)', value: v, buckets: [3, 1]}]}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yml", data)
		if err == nil && cfg == nil {
			t.Fatal("Parse returned neither a configuration nor an error")
		}
	})
}
