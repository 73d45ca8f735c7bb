package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/state"
	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// TestDamagedStateFileStartsFresh: a state file cut to half its size or
// with 64 KiB of junk in its middle made the agent panic at every start
// (a restart loop of stack traces under systemd), and an empty one was
// silently taken for a new file. Now the agent moves it aside, says so at
// error level and in tokpulse_agent_state_file_recovered, and runs.
func TestDamagedStateFileStartsFresh(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string, size int64) error
	}{
		{"truncated to half", func(path string, size int64) error { return os.Truncate(path, size/2) }},
		{"64 KiB of junk in the middle", func(path string, size int64) error {
			junk := make([]byte, 64<<10)
			_, _ = rand.Read(junk)
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt(junk, size/2-32<<10)
			return err
		}},
		{"zero length", func(path string, _ int64) error { return os.Truncate(path, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			stateDir := filepath.Join(dir, "state")
			// A state file of a busy agent: many pages deep.
			s, err := state.Open(stateDir)
			if err != nil {
				t.Fatal(err)
			}
			kv := map[string][]byte{}
			for i := range 4000 {
				kv[fmt.Sprintf("k%05d", i)] = bytes.Repeat([]byte{byte(i)}, 100)
			}
			if err := s.Bucket("outbox").PutMany(kv); err != nil {
				t.Fatal(err)
			}
			s.Close()
			path := filepath.Join(stateDir, state.FileName)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.damage(path, fi.Size()); err != nil {
				t.Fatal(err)
			}

			addr := testutil.FreeAddr(t)
			cfg := filepath.Join(dir, "agent.yaml")
			writeConfig(t, cfg, "agent:\n  interval: 1s\n  state_dir: "+stateDir+"\nweb:\n  listen: "+addr+"\n")
			a := testutil.StartAgent(t, testutil.AgentOptions{Args: []string{"--config", cfg}, Addr: addr})
			a.WaitReady(t, 1, 15*time.Second)
			if _, body := a.Get(t, "/metrics"); !strings.Contains(body, "tokpulse_agent_state_file_recovered 1") {
				t.Errorf("/metrics lacks tokpulse_agent_state_file_recovered 1")
			}
			// The agent's own P2 (packaging/rules/self/agent.yml).
			testutil.Eventually(t, 10*time.Second, "TokPulseAgentStateFileRecovered firing", func() bool {
				_, body := a.Get(t, "/api/v1/alerts")
				return strings.Contains(body, `"alertname": "TokPulseAgentStateFileRecovered"`) && strings.Contains(body, `"state": "firing"`)
			})
			out := a.Output()
			for _, want := range []string{"level=ERROR", "The state file was damaged", "moved_to=" + path + ".corrupt-", "lost="} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "panic") {
				t.Errorf("the agent panicked:\n%s", out)
			}
			moved, _ := filepath.Glob(path + ".corrupt-*")
			if len(moved) != 1 {
				t.Errorf("damaged files kept: %v", moved)
			}
			a.Signal(t, syscall.SIGTERM)
			if code := a.WaitExit(t, 10*time.Second); code != 0 {
				t.Errorf("exit code %d", code)
			}

			// The next start finds a sound file: no recovery, gauge 0.
			a = testutil.StartAgent(t, testutil.AgentOptions{Args: []string{"--config", cfg}, Addr: addr})
			a.WaitReady(t, 1, 15*time.Second)
			if _, body := a.Get(t, "/metrics"); !strings.Contains(body, "tokpulse_agent_state_file_recovered 0") {
				t.Errorf("second start: /metrics lacks tokpulse_agent_state_file_recovered 0")
			}
			a.Signal(t, syscall.SIGTERM)
			a.WaitExit(t, 10*time.Second)
		})
	}
}
