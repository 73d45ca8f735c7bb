package main

// Issue 12's hostile files, against the real binary: FIFOs and devices
// where the configuration names a file, a huge configuration, unreadable
// secrets under check as an unprivileged user.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// runBinary runs the agent binary with args and returns its exit code and
// output. A run still going after 30 s is killed and fails the test: the
// point of these tests is that nothing hangs.
func runBinary(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runProgram(t, testutil.AgentBinary(t), args...)
}

func runProgram(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v still running after 30 s (killed)\nstderr:\n%s", args, errOut.String())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

func mkfifo(t *testing.T, path string) string {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCheckRefusesSpecialFilesWithFileAndLine: a FIFO or a device where the
// configuration names a file hung check (os.Open on a FIFO waits for a
// writer) or grew it without bound (/dev/zero as web.config_file reached
// 4.4 GB in 5 s). Each is refused now, at its line, naming the file.
func TestCheckRefusesSpecialFilesWithFileAndLine(t *testing.T) {
	dir := t.TempDir()
	fifo := mkfifo(t, filepath.Join(dir, "fifo"))
	for _, tc := range []struct {
		name string
		body string // after the agent: section
		want []string
	}{
		{"fifo as web.config_file", "web:\n  config_file: " + fifo + "\n",
			[]string{"agent.yaml:4:3: web.config_file:", fifo + " is a FIFO (named pipe), not a regular file"}},
		{"dev zero as web.config_file", "web:\n  config_file: /dev/zero\n",
			[]string{"agent.yaml:4:3: web.config_file:", "/dev/zero is a character device"}},
		{"fifo as a rule file", "rule_files: [" + fifo + "]\n",
			[]string{"reading rule file: " + fifo + " is a FIFO (named pipe)", "point the setting at a regular file"}},
		{"fifo as a template", "notify:\n  templates:\n    initial_file: " + fifo + "\n",
			[]string{"agent.yaml:5:5: notify.templates.initial_file: cannot read template: " + fifo + " is a FIFO"}},
		{"fifo as a secret file", "notify:\n  webhooks:\n    - url: http://127.0.0.1:1/\n      secret_file: " + fifo + "\n",
			[]string{"agent.yaml:6:7: notify.webhooks[0].secret_file: reading secret file " + fifo, "is a FIFO"}},
		{"fifo as a CA file", "notify:\n  webhooks:\n    - url: https://127.0.0.1:1/\n      tls: {ca_file: " + fifo + "}\n",
			[]string{"notify.webhooks[0].tls.ca_file: reading tls.ca_file: " + fifo + " is a FIFO"}},
		{"fifo as a probe CA file", "probes:\n  - name: p\n    url: https://127.0.0.1:1/\n    tls: {ca_file: " + fifo + "}\n",
			[]string{"agent.yaml:6:5: probes[0].tls: reading tls.ca_file: " + fifo + " is a FIFO"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "agent.yaml")
			writeConfig(t, cfg, "agent:\n  state_dir: "+dir+"/state\n"+tc.body)
			code, _, stderr := runBinary(t, "check", "--config", cfg)
			if code != 1 {
				t.Fatalf("check exited %d, want 1; stderr:\n%s", code, stderr)
			}
			for _, want := range tc.want {
				if !strings.Contains(stderr, strings.ReplaceAll(want, "agent.yaml:", cfg+":")) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
	t.Run("fifo as the configuration", func(t *testing.T) {
		code, _, stderr := runBinary(t, "check", "--config", fifo)
		if code != 1 || !strings.Contains(stderr, fifo+" is a FIFO") {
			t.Fatalf("check exited %d:\n%s", code, stderr)
		}
	})
	t.Run("dev zero as --web.config.file of run", func(t *testing.T) {
		cfg := filepath.Join(dir, "agent.yaml")
		writeConfig(t, cfg, "agent:\n  state_dir: "+dir+"/state\nweb:\n  listen: "+testutil.FreeAddr(t)+"\n")
		code, _, stderr := runBinary(t, "run", "--config", cfg, "--web.config.file", "/dev/zero")
		if code != 1 || !strings.Contains(stderr, "--web.config.file: reading the web config file: /dev/zero is a character device") {
			t.Fatalf("run exited %d:\n%s", code, stderr)
		}
	})
}

// TestFIFOLogPathDoesNotWedgeTheAgent: a FIFO among the log paths blocked
// the tailer in os.Open; SIGTERM then no longer stopped the agent and a
// SIGHUP wedged the main loop. Now the FIFO is refused with a warning and
// counted, a reload completes, the watchdog keeps being fed, and SIGTERM
// stops the agent within 10 s.
func TestFIFOLogPathDoesNotWedgeTheAgent(t *testing.T) {
	dir := t.TempDir()
	logDir := filepath.Join(dir, "log")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := mkfifo(t, filepath.Join(logDir, "p.log"))
	writeConfig(t, filepath.Join(logDir, "a.log"), "")
	addr := testutil.FreeAddr(t)
	cfg := filepath.Join(dir, "agent.yaml")
	writeConfig(t, cfg, fmt.Sprintf(`agent:
  interval: 1s
  state_dir: %[1]s/state
web:
  listen: %[2]s
host: {cpu: false, filesystem: {enabled: false}, disk: {enabled: false}, network: {enabled: false}}
logs:
  - name: p
    paths: [%[3]s]
    poll_interval: 100ms
  - name: glob
    paths: [%[4]s/*.log]
    start_at: beginning
    poll_interval: 100ms
`, dir, addr, fifo, logDir))
	a := testutil.StartAgent(t, testutil.AgentOptions{Args: []string{"--config", cfg}, Env: []string{"WATCHDOG_USEC=1000000"}, Addr: addr})
	a.WaitReady(t, 1, 15*time.Second)

	errorsRE := regexp.MustCompile(`tokpulse_log_read_errors_total\{source="(p|glob)"\} ([1-9]\d*)`)
	testutil.Eventually(t, 10*time.Second, "read errors counted for both sources", func() bool {
		_, body := a.Get(t, "/metrics")
		return len(errorsRE.FindAllString(body, -1)) == 2
	})
	if !strings.Contains(a.Output(), "is a FIFO (named pipe), not a regular file") {
		t.Errorf("no warning names the FIFO:\n%s", a.Output())
	}

	// The regular file of the glob is still read.
	f, err := os.OpenFile(filepath.Join(logDir, "a.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "a line")
	f.Close()
	testutil.Eventually(t, 10*time.Second, "the regular file's line counted", func() bool {
		_, body := a.Get(t, "/metrics")
		return strings.Contains(body, `tokpulse_log_lines_total{source="glob"} 1`)
	})

	// A reload completes (READY=1 again) and the main loop goes on
	// feeding the watchdog after it.
	a.Signal(t, syscall.SIGHUP)
	a.WaitReady(t, 2, 10*time.Second)
	pings := a.Notify.Count("WATCHDOG=1")
	testutil.Eventually(t, 5*time.Second, "watchdog pings after the reload", func() bool { return a.Notify.Count("WATCHDOG=1") >= pings+2 })

	start := time.Now()
	a.Signal(t, syscall.SIGTERM)
	if code := a.WaitExit(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
}

// TestConfigSizeCap: a configuration over 4 MiB is refused at once, with
// what to do; one just under it is decoded (in linear time: the 1 MB case
// of the issue took 3.4 s and a 4 MB one 51 s; docs/performance.md).
func TestConfigSizeCap(t *testing.T) {
	dir := t.TempDir()
	labels := func(target int) string {
		var b strings.Builder
		b.WriteString("agent:\n  state_dir: " + dir + "/state\n  labels:\n")
		for i := 0; b.Len() < target; i++ {
			fmt.Fprintf(&b, "    l%07d: value%07d\n", i, i)
		}
		return b.String()
	}
	big := filepath.Join(dir, "big.yaml")
	writeConfig(t, big, labels(4<<20+1))
	code, _, stderr := runBinary(t, "check", "--config", big)
	if code != 1 || !strings.Contains(stderr, "configuration file "+big+" is larger than 4 MiB, the most the agent reads") {
		t.Fatalf("check of a 4 MiB+ config exited %d:\n%s", code, stderr)
	}
	under := filepath.Join(dir, "under.yaml")
	body := labels(4<<20 - 64<<10)
	writeConfig(t, under, body)
	start := time.Now()
	code, stdout, stderr := runBinary(t, "check", "--config", under)
	if code != 0 {
		t.Fatalf("check of a %d-byte config exited %d:\n%s", len(body), code, stderr)
	}
	t.Logf("check of %d bytes (%d labels) took %s: %s", len(body), strings.Count(body, "\n")-3, time.Since(start).Round(time.Millisecond), strings.TrimSpace(stdout))
}

// TestConfigSecondDocumentAndMissingRuleFile: what yaml and globs used to
// let through silently.
func TestConfigSecondDocumentAndMissingRuleFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	for _, tc := range []struct{ name, body, want string }{
		{"second document", "agent:\n  interval: 5s\n---\nagent:\n  interval: 1s\n",
			cfg + `:3: a second YAML document starts here; the file must hold one configuration: remove this "---" line`},
		{"missing literal rule file", "rule_files: [" + dir + "/rules/app.yml]\n",
			"rule_files: " + dir + "/rules/app.yml does not exist; correct the path, or write a glob such as " + dir + "/rules/*.yml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeConfig(t, cfg, tc.body)
			code, _, stderr := runBinary(t, "check", "--config", cfg)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("check exited %d; stderr:\n%s\nwant %q", code, stderr, tc.want)
			}
		})
	}
	t.Run("glob matching nothing stays a warning", func(t *testing.T) {
		writeConfig(t, cfg, "agent:\n  state_dir: "+dir+"/state\nrule_files: ["+dir+"/rules.d/*.yml]\n")
		code, _, stderr := runBinary(t, "check", "--config", cfg)
		if code != 0 || !strings.Contains(stderr, "warning: rule_files: \""+dir+"/rules.d/*.yml\": directory "+dir+"/rules.d does not exist") {
			t.Fatalf("check exited %d:\n%s", code, stderr)
		}
	})
}

// TestCheckAsUnprivilegedUser: check used to stat secret files, so a
// secret only root can read passed `check` and stopped the service. Now
// check reads it, and check --as-user proves what the service's user sees;
// a CA file without a certificate and a group-readable secret are caught
// as well.
func TestCheckAsUnprivilegedUser(t *testing.T) {
	testutil.RequireRoot(t)
	// A tree the user nobody can traverse; t.TempDir's parents are 0700.
	dir, err := os.MkdirTemp("", "tpa-asuser")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The binary, where nobody may run it (the built one sits in a 0700
	// temporary directory).
	src, err := os.ReadFile(testutil.AgentBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tokpulse-agent")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "webhook.key")
	if err := os.WriteFile(secret, []byte("k3y\n"), 0o600); err != nil { // root's alone
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "agent.yaml")
	writeConfig(t, cfg, "agent:\n  state_dir: "+dir+"/state\nnotify:\n  webhooks:\n    - url: http://127.0.0.1:1/hook\n      secret_file: "+secret+"\n")

	if code, stdout, stderr := runBinary(t, "check", "--config", cfg); code != 0 || strings.Contains(stderr, "warning") {
		t.Fatalf("check as root exited %d:\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr := runProgram(t, bin, "check", "--config", cfg, "--as-user", "nobody")
	if code != 1 {
		t.Fatalf("check --as-user nobody exited %d, want 1:\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{cfg + ":6:7: notify.webhooks[0].secret_file: reading secret file " + secret, "permission denied", "readable by the agent's user"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, "checking as user nobody") {
		t.Errorf("stdout does not say as whom it checks:\n%s", stdout)
	}

	// Readable by all: nobody passes, with a warning naming the fix.
	if err := os.Chmod(secret, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runProgram(t, bin, "check", "--config", cfg, "--as-user", "nobody")
	if code != 0 || !strings.Contains(stderr, "warning: "+cfg+":6:7: notify.webhooks[0].secret_file: secret file "+secret+" can be read by users other than its owner and group (mode 0644); run chmod 640") {
		t.Fatalf("check exited %d:\n%s", code, stderr)
	}

	// A CA file holding no certificate stopped run; check says so now.
	ca := filepath.Join(dir, "ca.pem")
	writeConfig(t, ca, "not a certificate\n")
	writeConfig(t, cfg, "agent:\n  state_dir: "+dir+"/state\nnotify:\n  webhooks:\n    - url: https://127.0.0.1:1/hook\n      tls: {ca_file: "+ca+"}\n")
	code, _, stderr = runBinary(t, "check", "--config", cfg)
	if code != 1 || !strings.Contains(stderr, "notify.webhooks[0].tls.ca_file: tls.ca_file "+ca+" holds no PEM certificate") {
		t.Fatalf("check exited %d:\n%s", code, stderr)
	}

	// Without root, --as-user says how to run it.
	code, _, stderr = runProgram(t, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", bin, "check", "--config", cfg, "--as-user", "nobody")
	if code != 2 || !strings.Contains(stderr, "check --as-user needs root to change user; run: sudo tokpulse-agent check --as-user nobody") {
		t.Errorf("check --as-user without root exited %d:\n%s", code, stderr)
	}
}
