package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ReloadStatusFile, in the state directory, holds the verdict of the
// agent's last reload (and of its start), however it was triggered, so that
// `tokpulse-agent reload` — the unit's ExecReload= — can signal the agent
// and wait for its answer: `systemctl reload` then fails when the agent
// refuses the new configuration.
const ReloadStatusFile = "reload-status.json"

// ReloadStatus is the content of ReloadStatusFile.
type ReloadStatus struct {
	// PID is the agent's process; Seq counts its reloads (0: the start).
	PID int `json:"pid"`
	Seq int `json:"seq"`
	// OK is false when the reload was refused; Error then says why, one
	// problem per line.
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at"`
	// ConfigFile is the file the agent reads; LastGood is set while it
	// runs on the last good copy because the file did not load.
	ConfigFile string `json:"config_file"`
	LastGood   bool   `json:"last_good,omitempty"`
}

// writeReloadStatus replaces the status file atomically.
func writeReloadStatus(stateDir string, st ReloadStatus) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(stateDir, ReloadStatusFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadReloadStatus reads the status file in stateDir.
func ReadReloadStatus(stateDir string) (ReloadStatus, error) {
	var st ReloadStatus
	data, err := os.ReadFile(filepath.Join(stateDir, ReloadStatusFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("%s is corrupt: %w", filepath.Join(stateDir, ReloadStatusFile), err)
	}
	return st, nil
}

// StateDirFor returns the state directory of the configuration file (the
// embedded default when empty), as the agent would use it: $STATE_DIRECTORY
// under systemd, else agent.state_dir, else the default.
func StateDirFor(configFile string) string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return d
	}
	src, err := readConfigSource(configFile)
	if err != nil {
		return defaultStateDir()
	}
	return guessStateDir(src.data)
}

// ErrReloadRefused is returned by Reload when the agent kept its running
// configuration.
var ErrReloadRefused = errors.New("the agent refused the new configuration and keeps the running one")

// Reload asks the agent with pid to reload (SIGHUP) and waits until it has
// answered in stateDir's status file, or ctx ends. It returns the agent's
// verdict: nil when the new configuration is in force, an error wrapping
// ErrReloadRefused with the agent's reasons when it was refused.
func Reload(ctx context.Context, pid int, stateDir string, poll time.Duration) (ReloadStatus, error) {
	before, err := ReadReloadStatus(stateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return before, err
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return before, fmt.Errorf("signalling the agent (pid %d): %w", pid, err)
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return before, fmt.Errorf("the agent (pid %d) did not report on the reload in time: %w; see journalctl -u tokpulse-agent", pid, ctx.Err())
		case <-t.C:
		}
		st, err := ReadReloadStatus(stateDir)
		fresh := st.PID == pid && (st.Seq > before.Seq || before.PID != pid && st.Seq > 0)
		if err != nil || !fresh {
			continue
		}
		if !st.OK {
			return st, fmt.Errorf("%w:\n%s", ErrReloadRefused, st.Error)
		}
		return st, nil
	}
}
