package agent

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/collectors"
	"github.com/tokpulse/tokpulse-agent/internal/testutil/golden"
)

// TestInvalidConfigs pairs each testdata/invalid-*.yml with the exact error
// it must produce, in invalid-*.yml.err.
func TestInvalidConfigs(t *testing.T) {
	golden.InvalidConfigs(t, "testdata/invalid-*.yml", "go test ./agent -run TestInvalidConfigs", func(t *testing.T, f string) string {
		_, err := Load(f)
		if err == nil {
			t.Fatalf("Load(%s) succeeded; want an error", f)
		}
		// Every problem names the file and a line, so an editor can jump there.
		for _, line := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
			if !strings.HasPrefix(line, f+":") {
				t.Errorf("problem %q does not start with %q", line, f+":")
			}
		}
		return err.Error() + "\n"
	})
}

func TestValidConfigLoadsExpectedValues(t *testing.T) {
	cfg, err := Load("testdata/valid-full.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"hostname", cfg.Agent.Hostname, "web-1"},
		{"labels", cfg.Agent.Labels["datacenter"], "fra1"},
		{"interval", cfg.Agent.Interval.D(), 15 * time.Second},
		{"state_dir", cfg.Agent.StateDir, "/tmp/tokpulse-state"},
		{"paths", cfg.Agent.Paths, collectors.Paths{Proc: "/host/proc", Sys: "/host/sys", Rootfs: "/host"}},
		{"log", cfg.Agent.Log, LogConfig{Level: "debug", Format: "json"}},
		{"listen", cfg.Web.Listen, "[::1]:9999"},
		{"host.cpu", cfg.Host.CPU, true},
		{"host.load", cfg.Host.Load, false},
		// Keys not written keep their defaults.
		{"host.memory default", cfg.Host.Memory, true},
		{"fs include", cfg.Host.Filesystem.MountPointsInclude.String(), "^/(srv|var)"},
		{"fs exclude default kept", cfg.Host.Filesystem.MountPointsExclude.String(), collectors.DefaultHostConfig().Filesystem.MountPointsExclude.String()},
		{"net exclude", cfg.Host.Network.DevicesExclude.Match("veth12"), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
}

func TestEmbeddedDefaultConfig(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatalf("embedded default config is invalid: %v", err)
	}
	if cfg.Web.Listen != DefaultListen {
		t.Errorf("listen = %q, want %q", cfg.Web.Listen, DefaultListen)
	}
	if cfg.Agent.Interval.D() != 10*time.Second {
		t.Errorf("interval = %s, want 10s", cfg.Agent.Interval)
	}
}

func TestEmptyFileIsAllDefaults(t *testing.T) {
	cfg, err := Parse("empty.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	if cfg.Agent.Interval != def.Agent.Interval || !reflect.DeepEqual(cfg.Web, def.Web) {
		t.Errorf("empty file did not give defaults: %+v", cfg)
	}
}

func TestDefaultStateDir(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/run/state-from-systemd")
	if got := defaultStateDir(); got != "/run/state-from-systemd" {
		t.Errorf("with STATE_DIRECTORY set: %q", got)
	}
}

// TestWebOf: the commands that talk to the running agent read only the
// web section, so that a file that does not load (the agent then runs on
// its last good copy) or names secrets the operator cannot read still
// tells where the agent listens.
func TestWebOf(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body string
		want       WebConfig
	}{
		{"defaults", "agent: {interval: 10s}\n", WebConfig{Listen: DefaultListen}},
		{"the rest does not load", "agent: {intervall: x}\nweb: {listen: '127.0.0.1:9999', config_file: /etc/tokpulse-agent/web.yml}\nnotify: {webhooks: [{url: 1}]}\n",
			WebConfig{Listen: "127.0.0.1:9999", ConfigFile: "/etc/tokpulse-agent/web.yml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, tc.name+".yaml")
			if err := os.WriteFile(f, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := WebOf(f)
			if err != nil || got.Listen != tc.want.Listen || got.ConfigFile != tc.want.ConfigFile {
				t.Errorf("WebOf = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	if got, err := WebOf(""); err != nil || got.Listen != DefaultListen {
		t.Errorf("embedded default: %+v, %v", got, err)
	}
	if _, err := WebOf(filepath.Join(dir, "absent.yaml")); err == nil || !strings.Contains(err.Error(), "--url") {
		t.Errorf("a missing file: %v, want an error that names --url", err)
	}
}
