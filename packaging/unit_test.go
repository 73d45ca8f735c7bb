package packaging

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// rhel8Systemd is the oldest systemd the packages are for: RHEL 8's.
// Debian 11, 12 and 13 (247, 252, 257) are tested for real in booted
// containers (TestDebianReleases, TestRepositories); RHEL 8 cannot be
// booted here, so its part rests on this table.
const rhel8Systemd = 239

// systemdSince is the systemd release that introduced each setting the
// unit uses, from the "Added in version" notes of systemd.exec(5),
// systemd.resource-control(5), systemd.service(5) and systemd.unit(5) of
// systemd 257 and from systemd's NEWS; 0 means older than any systemd a
// supported distribution runs. Values that came later than their setting
// are noted: ProtectSystem=strict (232) and SystemCallFilter=@system-service
// (239).
var systemdSince = map[string]int{
	"Description": 0, "Documentation": 0, "Wants": 0, "After": 0,
	"StartLimitIntervalSec": 230, "StartLimitBurst": 230,
	"Type": 0, "WatchdogSec": 0, "EnvironmentFile": 0,
	"ExecStartPre": 0, "ExecStart": 0, "ExecReload": 0,
	"Restart": 0, "RestartSec": 0, "TimeoutStopSec": 0,
	"User": 0, "Group": 0, "SupplementaryGroups": 0,
	"StateDirectory": 235, "StateDirectoryMode": 235, "UMask": 0,
	"MemoryHigh": 231, "MemoryMax": 231, "TasksMax": 227,
	"CPUWeight": 232, "CPUQuota": 213, "TimerSlackNSec": 0,
	"CapabilityBoundingSet": 0, "AmbientCapabilities": 229, "NoNewPrivileges": 187,
	"ProtectSystem": 232, "ProtectHome": 214, "PrivateTmp": 0, "PrivateDevices": 209,
	"ProtectKernelTunables": 232, "ProtectKernelModules": 232, "ProtectKernelLogs": 244,
	"ProtectControlGroups": 232, "ProtectClock": 245, "ProtectHostname": 242,
	"RemoveIPC": 232, "PrivateMounts": 239, "KeyringMode": 235,
	"RestrictAddressFamilies": 211, "RestrictNamespaces": 233, "RestrictRealtime": 231,
	"RestrictSUIDSGID": 242, "LockPersonality": 235, "MemoryDenyWriteExecute": 231,
	"PrivateUsers": 232, "DevicePolicy": 0, "SystemCallArchitectures": 209,
	"SystemCallFilter": 239, "SystemCallErrorNumber": 209,
	"WantedBy": 0,
}

// TestUnitOnRHEL8 keeps docs/install.md true about RHEL 8: every setting of
// tokpulse-agent.service that systemd 239 does not know (it logs "Unknown
// lvalue" for each at every daemon-reload and ignores it) is named there,
// and a setting added to the unit must first be placed in systemdSince.
func TestUnitOnRHEL8(t *testing.T) {
	root := repoRoot(t)
	f, err := os.Open(filepath.Join(root, "tokpulse-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if key, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") && !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "install.md"))
	if err != nil {
		t.Fatal(err)
	}
	var newer []string
	for _, key := range keys {
		since, ok := systemdSince[key]
		switch {
		case !ok:
			t.Errorf("tokpulse-agent.service sets %s=, which systemdSince does not know: add the systemd version that introduced it (systemd.exec(5) and friends say \"Added in version\"), and if it is newer than %d, say in docs/install.md what RHEL 8 does without it", key, rhel8Systemd)
		case since > rhel8Systemd:
			newer = append(newer, key)
			if !regexp.MustCompile("`" + key + "=`").Match(doc) {
				t.Errorf("docs/install.md does not name %s= (systemd %d), which RHEL 8's systemd %d ignores", key, since, rhel8Systemd)
			}
		}
	}
	t.Logf("settings RHEL 8 (systemd %d) ignores: %v", rhel8Systemd, newer)
	if len(newer) == 0 {
		t.Errorf("found no setting newer than systemd %d; has the unit's format changed?", rhel8Systemd)
	}
}
