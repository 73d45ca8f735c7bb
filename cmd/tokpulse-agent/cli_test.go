package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokpulse/tokpulse-agent/agent"
)

// runCLI runs args with systemConfig standing in for
// /etc/tokpulse-agent/agent.yaml, and returns the exit status and output.
func runCLI(t *testing.T, systemConfig string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	// The real user nobody stands in for tokpulse-agent, which exists only
	// where the package is installed.
	nobody := agent.ServiceAccount{User: "nobody", Hidden: map[string]string{}}
	code := (&cli{stdout: &out, stderr: &errOut, systemConfig: systemConfig, service: nobody}).main(args)
	return code, out.String(), errOut.String()
}

// TestUsage holds every subcommand to the command-line conventions of
// promtool and the Prometheus exporters: anything not understood is a
// usage error (exit 2, on stderr, naming the mistake), and -h/--help print
// the command's usage on stdout and exit 0.
func TestUsage(t *testing.T) {
	none := filepath.Join(t.TempDir(), "absent.yaml")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string // substring, or "" for empty
		stderr string
	}{
		{"no command", nil, 2, "", "tokpulse-agent check [FILE...]"},
		{"help", []string{"help"}, 0, "tokpulse-agent notify test", ""},
		{"--help", []string{"--help"}, 0, "tokpulse-agent run", ""},
		{"help check", []string{"help", "check"}, 0, "Usage: tokpulse-agent check [--as-user NAME] [--config FILE] [FILE...]", ""},
		{"unknown command", []string{"frob"}, 2, "", `unknown command "frob"`},
		{"flag before the command", []string{"--config", "x", "run"}, 2, "", `unknown command "--config"`},
		{"group without subcommand", []string{"notify"}, 2, "", `"notify" needs a subcommand`},
		{"group -h", []string{"notify", "-h"}, 0, "tokpulse-agent notify test", ""},
		{"unknown subcommand", []string{"config", "show"}, 2, "", `unknown command "config show"`},
		{"version", []string{"version"}, 0, "tokpulse-agent dev (commit unknown, go1.", ""},
		{"--version", []string{"--version"}, 0, "tokpulse-agent dev", ""},
		{"config default", []string{"config", "default"}, 0, "rule_files:", ""},
		// The cases: a positional path and a flag after it used
		// to run or check the embedded default.
		{"run with a positional argument", []string{"run", "agent.yaml", "--config", "x"}, 2, "", `tokpulse-agent run: unexpected argument "agent.yaml"`},
		{"check with both", []string{"check", "--config", "a.yaml", "b.yaml"}, 2, "", "either with --config or as arguments"},
		// The promtool stand-ins answer as promtool does (exit 1).
		{"test rules without a file", []string{"test", "rules"}, 1, "", "tokpulse-agent test: error: required argument 'test-rule-file' not provided, try --help"},
		{"status with an argument", []string{"status", "web-1"}, 2, "", `unexpected argument "web-1"`},
		{"notify test with an argument", []string{"notify", "test", "central"}, 2, "", `unexpected argument "central"`},
		{"config default with an argument", []string{"config", "default", "x"}, 2, "", `unexpected argument "x"`},
		{"version with an argument", []string{"version", "x"}, 2, "", `unexpected argument "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, none, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			if tc.stdout == "" && out != "" || !strings.Contains(out, tc.stdout) {
				t.Errorf("stdout %q, want it to contain %q", out, tc.stdout)
			}
			if tc.stderr == "" && errOut != "" || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("stderr %q, want it to contain %q", errOut, tc.stderr)
			}
		})
	}

	// Every command, written with each spelling of help and with an
	// unknown flag anywhere among its arguments.
	for _, cmd := range commands() {
		words := strings.Fields(cmd.name)
		if cmd.raw != nil {
			// promtool's command line (kingpin): -h and --help print the
			// usage and exit 0, an unknown flag exits 1 with promtool's
			// words, so that promtool's invocations work unchanged.
			for _, h := range []string{"-h", "--help"} {
				t.Run(cmd.name+" "+h, func(t *testing.T) {
					code, out, errOut := runCLI(t, none, append(words, h)...)
					if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: tokpulse-agent "+words[0]) {
						t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
					}
				})
			}
			t.Run(cmd.name+" --no-such-flag", func(t *testing.T) {
				code, out, errOut := runCLI(t, none, append(words, "FILE", "--no-such-flag")...)
				if code != 1 || out != "" || !strings.Contains(errOut, "unknown long flag '--no-such-flag', try --help") {
					t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
				}
			})
			continue
		}
		for _, h := range []string{"-h", "-help", "--help"} {
			t.Run(cmd.name+" "+h, func(t *testing.T) {
				code, out, errOut := runCLI(t, none, append(words, h)...)
				if code != 0 || errOut != "" || !strings.HasPrefix(out, "Usage: "+cmd.synopsis()+"\n") {
					t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
				}
			})
		}
		for _, args := range [][]string{
			append(append([]string(nil), words...), "--no-such-flag"),
			append(append([]string(nil), words...), "FILE", "--no-such-flag"),
		} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				code, out, errOut := runCLI(t, none, args...)
				want := "tokpulse-agent " + cmd.name + ": unknown flag -no-such-flag\nUsage: " + cmd.synopsis() + "\n"
				if code != 2 || out != "" || !strings.HasPrefix(errOut, want) {
					t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant stderr to start with %q", code, out, errOut, want)
				}
			})
		}
	}
}

// TestCheckFiles covers which configuration check reads: the files given
// (each one, as promtool check config), --config, else the system file when
// it exists, else the embedded default; the output always names it.
func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	valid := filepath.Join(dir, "valid.yaml")
	writeConfig(t, valid, "agent:\n  interval: 20s\n")
	invalid := filepath.Join(dir, "invalid.yaml")
	writeConfig(t, invalid, "agent:\n  intervall: 20s\n")
	none := filepath.Join(dir, "absent.yaml")
	// A secret only root may read: the service user could not.
	secret := filepath.Join(dir, "webhook.key")
	if err := os.WriteFile(secret, []byte("k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	private := filepath.Join(dir, "private.yaml")
	writeConfig(t, private, "notify:\n  webhooks:\n    - {url: 'http://127.0.0.1:1/', secret_file: "+secret+"}\n")
	for _, tc := range []struct {
		name         string
		systemConfig string
		args         []string
		code         int
		stdout       []string
		stderr       []string
	}{
		{"system file used when it exists", valid, []string{"check"}, 0,
			[]string{valid + ": OK (interval 20s"}, nil},
		{"an invalid system file fails", invalid, []string{"check"}, 1,
			nil, []string{invalid + ":2:3: agent.intervall: unknown key"}},
		{"embedded default without a system file", none, []string{"check"}, 0,
			[]string{"<embedded default config>: OK (interval 10s", "builtin:runbook.yml: OK"},
			[]string{"note: " + none + " does not exist; checking the embedded default configuration"}},
		{"--config wins over the system file", invalid, []string{"check", "--config", valid}, 0,
			[]string{valid + ": OK"}, nil},
		{"a positional file", none, []string{"check", invalid}, 1,
			nil, []string{invalid + ":2:3: agent.intervall"}},
		{"every positional file", none, []string{"check", valid, invalid, valid}, 1,
			[]string{valid + ": OK"}, []string{invalid + ":2:3: agent.intervall"}},
		{"a secret the service user cannot read", none, []string{"check", private}, 0,
			[]string{private + ": OK"},
			[]string{"warning: notify.webhooks[0].secret_file: the service user nobody cannot read " + secret + ": owner root:root, mode -rw-------"}},
		{"-h after a file", none, []string{"check", invalid, "-h"}, 0,
			[]string{"Usage: tokpulse-agent check"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.systemConfig, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q", w)
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
			}
		})
	}
	// Three files, two valid: two OK lines and the problem of the third.
	_, out, _ := runCLI(t, none, "check", valid, invalid, valid)
	if n := strings.Count(out, valid+": OK"); n != 2 {
		t.Errorf("%d OK lines for two valid files:\n%s", n, out)
	}
}

// TestSystemConfigIsRealPath pins the path the packages install the
// configuration at, which the default resolution depends on.
func TestSystemConfigIsRealPath(t *testing.T) {
	if SystemConfigFile != "/etc/tokpulse-agent/agent.yaml" {
		t.Errorf("SystemConfigFile = %s", SystemConfigFile)
	}
	nfpm, err := os.ReadFile("../../packaging/nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(nfpm), "dst: "+SystemConfigFile+"\n") {
		t.Errorf("packaging/nfpm.yaml does not install %s", SystemConfigFile)
	}
}
