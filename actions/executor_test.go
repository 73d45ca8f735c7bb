package actions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// run executes cfg's action with the executor, as the tracker does: with
// the action's timeout as the context's deadline.
func run(t *testing.T, e *Executor, cfg Config) (incident.Result, time.Duration) {
	t.Helper()
	a := cfg.Action()
	ctx, cancel := context.WithTimeout(context.Background(), a.Timeout)
	defer cancel()
	start := time.Now()
	res := e.Execute(ctx, a)
	return res, time.Since(start)
}

// TestCommandActions runs real commands: success, a failure with its exit
// status and output, a timeout that kills the command's children too, and
// output that goes through the redactor.
func TestCommandActions(t *testing.T) {
	dir := t.TempDir()
	child := filepath.Join(dir, "child.pid")
	for _, tc := range []struct {
		name    string
		command []string
		env     map[string]string
		timeout time.Duration
		err     string // substring; "" for success
		exit    int    // -1: no exit status
		output  string // substring of the excerpt
		absent  string // must not be in the excerpt
	}{
		{name: "success", command: []string{"/bin/sh", "-c", "echo flushed 12 jobs"}, exit: -1, output: "stdout: flushed 12 jobs"},
		{name: "failure", command: []string{"/bin/sh", "-c", "echo queue locked >&2; exit 3"},
			err: "exited with status 3: queue locked", exit: 3, output: "stderr: queue locked"},
		{name: "not installed", command: []string{"/nonexistent/flush-queue"}, err: "is it installed", exit: -1},
		{name: "env expanded", command: []string{"/bin/sh", "-c", `echo "queue=$$1"`, "sh", "$QUEUE"}, env: map[string]string{"QUEUE": "webhook_queue"},
			exit: -1, output: "queue=webhook_queue"},
		{name: "timeout kills the group", command: []string{"/bin/sh", "-c", "sleep 30 & echo $$! > " + child + "; wait"}, timeout: 300 * time.Millisecond,
			err: "did not finish within 300ms and was killed with everything it started", exit: -1},
		{name: "redacted", command: []string{"/bin/sh", "-c", "echo connecting to postgres://app:s3cr3t@db/app failed >&2; exit 1"},
			err: "exited with status 1", exit: 1, output: "stderr: connecting to", absent: "s3cr3t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Name, cfg.Command, cfg.Env, cfg.Timeout = "flush", tc.command, tc.env, yamlx.Duration(tc.timeout)
			e := NewExecutor([]Config{cfg}, Options{})
			res, took := run(t, e, cfg)
			switch {
			case tc.err == "" && res.Err != nil:
				t.Fatalf("error %v, want success", res.Err)
			case tc.err != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tc.err)):
				t.Fatalf("error %v, want one containing %q", res.Err, tc.err)
			}
			if got := -1; res.ExitStatus != nil {
				got = *res.ExitStatus
				if got != tc.exit {
					t.Errorf("exit status %d, want %d", got, tc.exit)
				}
			} else if tc.exit != -1 {
				t.Errorf("no exit status, want %d", tc.exit)
			}
			if !strings.Contains(res.Output, tc.output) || (tc.absent != "" && strings.Contains(res.Output, tc.absent)) {
				t.Errorf("output %q, want %q in it and not %q", res.Output, tc.output, tc.absent)
			}
			if tc.timeout > 0 {
				if took > 5*time.Second {
					t.Errorf("a command past its timeout took %s to end", took)
				}
				b, err := os.ReadFile(child)
				if err != nil {
					t.Fatal(err)
				}
				pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				// The kill reaches the child; give the kernel a moment to
				// reap it (it was re-parented).
				deadline := time.Now().Add(5 * time.Second)
				for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if err := syscall.Kill(pid, 0); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					t.Errorf("the command's child %d outlived the timeout", pid)
				}
			}
		})
	}
}

// TestCommandDefaultTimeout: without timeout:, a command gets
// DefaultCommandTimeout, and the message names it.
func TestCommandDefaultTimeout(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Name, cfg.Command = "x", []string{"/bin/true"}
	if got := cfg.Action().Timeout; got != DefaultCommandTimeout {
		t.Errorf("timeout %s, want %s", got, DefaultCommandTimeout)
	}
	cfg.Command, cfg.RestartUnit = nil, "redis"
	if got := cfg.Action().Timeout; got != DefaultRestartTimeout {
		t.Errorf("restart timeout %s, want %s", got, DefaultRestartTimeout)
	}
}

// fakeSystemd stands in for systemd's D-Bus API. There is no systemd as
// PID 1 on the build machines; the real D-Bus restart, polkit's verdicts
// included, is tested in a booted container (packaging/actions_test.go).
// This covers how each answer is explained.
type fakeSystemd struct {
	err    error
	result string // sent on the job channel; "" sends nothing
	units  []string
}

func (f *fakeSystemd) RestartUnitContext(_ context.Context, name, mode string, ch chan<- string) (int, error) {
	if mode != "replace" {
		return 0, fmt.Errorf("mode %q", mode)
	}
	f.units = append(f.units, name)
	if f.err != nil {
		return 0, f.err
	}
	if f.result != "" {
		ch <- f.result
	}
	return 42, nil
}

func (f *fakeSystemd) Close() {}

func TestRestartAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sd     *fakeSystemd
		polkit bool
		dial   error
		err    string
	}{
		{name: "done", sd: &fakeSystemd{result: "done"}},
		{name: "job failed", sd: &fakeSystemd{result: "failed"}, err: `systemd's restart job of tokpulse.service ended "failed"`},
		{name: "job never ends", sd: &fakeSystemd{}, err: "the restart of tokpulse.service did not finish within 1s; the job goes on in systemd"},
		{name: "polkit refuses", sd: &fakeSystemd{err: dbus.Error{Name: "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired", Body: []any{"Interactive authentication required."}}},
			polkit: true, err: "polkit refused to let the agent's user restart tokpulse.service (systemd: Interactive authentication required.); the installed polkit policy allows postgresql.service, tokpulse.service"},
		{name: "no polkitd", sd: &fakeSystemd{err: dbus.Error{Name: "org.freedesktop.DBus.Error.AccessDenied", Body: []any{"Permission denied"}}},
			err: "polkitd is not installed (or not running), so nothing lets the agent's user restart tokpulse.service (systemd: Permission denied); install it"},
		{name: "denied with polkitd", sd: &fakeSystemd{err: dbus.Error{Name: "org.freedesktop.DBus.Error.AccessDenied", Body: []any{"Permission denied"}}},
			polkit: true, err: "systemd denied the agent's user the restart of tokpulse.service: Permission denied"},
		{name: "no such unit", sd: &fakeSystemd{err: dbus.Error{Name: "org.freedesktop.systemd1.NoSuchUnit", Body: []any{"Unit tokpulse.service not found."}}},
			err: "systemd has no unit tokpulse.service to restart"},
		{name: "no bus", dial: errors.New("dial unix /run/dbus/system_bus_socket: connect: no such file or directory"),
			err: "connecting to systemd over the system D-Bus to restart tokpulse.service: dial unix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Name, cfg.RestartUnit, cfg.Timeout = "restart-app", "tokpulse", yamlx.Duration(time.Second)
			e := NewExecutor([]Config{cfg}, Options{
				Dial: func(context.Context) (Systemd, error) {
					if tc.dial != nil {
						return nil, tc.dial
					}
					return tc.sd, nil
				},
				Polkit:      func(context.Context) (bool, error) { return tc.polkit, nil },
				PolicyUnits: []string{"postgresql.service", "tokpulse.service"},
			})
			res, _ := run(t, e, cfg)
			switch {
			case tc.err == "" && res.Err != nil:
				t.Fatalf("error %v", res.Err)
			case tc.err != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tc.err)):
				t.Fatalf("error %v\nwant one containing %q", res.Err, tc.err)
			}
			if tc.sd != nil && (len(tc.sd.units) != 1 || tc.sd.units[0] != "tokpulse.service") {
				t.Errorf("restarted %q, want tokpulse.service once", tc.sd.units)
			}
		})
	}
}
