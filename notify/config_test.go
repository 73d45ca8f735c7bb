package notify

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil/golden"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// file is the part of agent.yaml these tests decode.
type agentFile struct {
	Notify Config `yaml:"notify"`
}

func (f *agentFile) Validate(c *yamlx.Checker, path string) {
	f.Notify.Validate(c, yamlx.Join(path, "notify"))
}

// TestConfigInvalid pairs every testdata/invalid-*.yml with the exact
// messages (testdata/invalid-*.yml.err) an operator gets for it.
func TestConfigInvalid(t *testing.T) {
	golden.InvalidConfigs(t, "testdata/invalid-*.yml", "go test ./notify -run TestConfigInvalid", func(t *testing.T, f string) string {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cfg := agentFile{Notify: DefaultConfig()}
		err = yamlx.Decode(f, data, &cfg)
		if err == nil {
			t.Fatal("accepted an invalid configuration")
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Error("a password from the URL reached the error message")
		}
		return err.Error() + "\n"
	})
}

func TestConfigValid(t *testing.T) {
	data, err := os.ReadFile("testdata/valid-full.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := agentFile{Notify: DefaultConfig()}
	if err := yamlx.Decode("valid-full.yml", data, &cfg); err != nil {
		t.Fatal(err)
	}
	n := cfg.Notify
	if got := strings.Join(n.OutputNames(), ","); got != "central,slack,team,stdout" {
		t.Errorf("outputs %s", got)
	}
	// Defaults seeded into list elements, where the file is silent.
	if n.Webhooks[1].Timeout.D() != DefaultTimeout || n.Webhooks[1].MaxBatch != DefaultMaxBatch || n.Webhooks[0].MaxBatch != 50 {
		t.Errorf("webhook defaults %+v", n.Webhooks)
	}
	if n.Alertmanagers[0].ResendInterval.D() != 30*time.Second || n.Alertmanagers[0].Timeout.D() != DefaultTimeout {
		t.Errorf("alertmanager %+v", n.Alertmanagers[0])
	}
}
