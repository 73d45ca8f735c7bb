package collectors

import (
	"os"
	"strings"
	"testing"

	"github.com/tokpulse/tokpulse-agent/internal/testutil/golden"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// TestInvalidConfigs pairs each testdata/invalid-*.yml with the exact
// errors it must produce, in invalid-*.yml.err.
func TestInvalidConfigs(t *testing.T) {
	golden.InvalidConfigs(t, "testdata/invalid-*.yml", "go test ./collectors -run TestInvalidConfigs", func(t *testing.T, f string) string {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		err = yamlx.Decode(f, data, &cfg)
		if err == nil {
			t.Fatal("accepted an invalid configuration")
		}
		return err.Error() + "\n"
	})
}

func TestValidConfig(t *testing.T) {
	data, err := os.ReadFile("testdata/valid-probes.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if err := yamlx.Decode("valid-probes.yml", data, &cfg); err != nil {
		t.Fatalf("rejected:\n%v", err)
	}
	p := cfg.Probes[0]
	if p.Timeout.D().String() != "5s" || p.Interval.D().String() != "10s" || p.MaxBodyBytes != 1<<20 || p.Method != "GET" || !p.FollowRedirects {
		t.Errorf("probe defaults not applied: %+v", p)
	}
	if cfg.Probes[1].Interval.D().String() != "30s" || cfg.Probes[1].Timeout.D().String() != "5s" {
		t.Errorf("a set interval lost the default timeout: %+v", cfg.Probes[1])
	}
	if c := cfg.Checks[2]; c.Value != "stdout" || c.MaxOutputBytes != 64<<10 || c.Timeout.D().String() != "10s" {
		t.Errorf("check defaults not applied: %+v", c)
	}
	if !strings.Contains(cfg.Processes[0].Match.Name.String(), "node") {
		t.Errorf("a process with no match does not match its name: %+v", cfg.Processes[0])
	}
	named, err := Build(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range named {
		names = append(names, n.Name)
	}
	if got := strings.Join(names, ","); got != "host,probes,checks,processes,systemd" {
		t.Errorf("built %s", got)
	}
}
