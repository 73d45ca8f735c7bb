// Package reaper runs a check command so that nothing it starts outlives
// it. Killing the command's process group is not enough: a child that
// calls setsid(2) leaves the group, and a child whose parent exits is
// handed to init (PID 1), out of reach.
//
// So the agent runs each command under a small reaper: the agent's own
// binary started again (through /proc/self/exe) with TOKPULSE_AGENT_REAPER
// set, whose Main marks itself a child subreaper (PR_SET_CHILD_SUBREAPER):
// every orphan among the command's descendants is re-parented to it
// rather than to init, whatever session or group it moved to. When the
// command ends, exits with an error or times out, the reaper kills its
// process group and then every process it is the parent of, round after
// round (an orphan's own children come to it when the orphan dies), until
// it has no child left; then it exits with the command's status.
//
// One reaper per run gives each check its own descendants: nothing of
// another check, nor the agent's own children (journalctl), is touched.
package reaper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// envMarker, set to "1", starts a process as a reaper; the reaper removes
// it from the command's environment.
const envMarker = "TOKPULSE_AGENT_REAPER"

// ExitStartFailed is the reaper's exit status when the command could not
// be started; the reason is on the status pipe.
const ExitStartFailed = 127

// Main turns this process into a reaper when it was started as one, and
// then never returns. Call it first in main(), and in TestMain of a
// package whose tests run checks (there the test binary is
// /proc/self/exe).
func Main() {
	if os.Getenv(envMarker) != "1" {
		return
	}
	os.Exit(run(os.Args[1:]))
}

// Cmd is a command that runs under a reaper.
type Cmd struct {
	*exec.Cmd
	status *os.File // read end of the reaper's status pipe
	w      *os.File
}

// Command returns a Cmd that runs argv (with env as its whole
// environment) under a reaper. When ctx ends, the reaper is asked
// (SIGTERM) to kill the command and all it started; Go kills the reaper
// itself if it has not exited waitDelay later.
func Command(ctx context.Context, argv, env []string, waitDelay time.Duration) (*Cmd, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "/proc/self/exe", argv...)
	cmd.Args[0] = "tokpulse-agent-reaper"
	cmd.Env = append(append([]string(nil), env...), envMarker+"=1")
	cmd.ExtraFiles = []*os.File{w} // fd 3: start errors
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// An agent that dies (SIGKILL, OOM) takes the reaper and, through
		// it, the command along.
		Pdeathsig: syscall.SIGTERM,
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = waitDelay
	return &Cmd{Cmd: cmd, status: r, w: w}, nil
}

// Run starts the reaper and waits for it. A command that could not be
// started is reported as a *StartError.
func (c *Cmd) Run() error {
	defer c.status.Close()
	err := c.Start()
	c.w.Close()
	if err != nil {
		return err
	}
	err = c.Wait()
	msg, _ := io.ReadAll(io.LimitReader(c.status, 4096))
	if len(msg) > 0 {
		return &StartError{Msg: string(msg)}
	}
	return err
}

// StartError is a command the reaper could not start (not found, not
// executable).
type StartError struct{ Msg string }

func (e *StartError) Error() string { return e.Msg }

// run is the reaper: it runs args as the command and returns the exit
// status to leave with.
func run(args []string) int {
	status := os.NewFile(3, "status")
	if len(args) == 0 {
		fmt.Fprint(status, "no command given")
		return ExitStartFailed
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(status, "PR_SET_CHILD_SUBREAPER: %v (the seccomp filter must allow prctl)", err)
		return ExitStartFailed
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = without(os.Environ(), envMarker)
	cmd.Stdin = nil // /dev/null
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// Its own process group: most of what it starts is killed at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprint(status, err.Error())
		return ExitStartFailed
	}
	status.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	killed := false
	select {
	case <-done:
	case <-term:
		killed = true
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	// Whatever the command left behind (its group, its setsid children,
	// their children) goes now.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	KillDescendants(os.Getpid(), 10*time.Second)
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case killed:
		return 128 + int(syscall.SIGKILL)
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

// KillDescendants kills every child of pid (which must be this process,
// a subreaper) and reaps them, round after round, until it has none left
// or limit has passed. Each round stops the children first, so that none
// of them forks while they are killed.
func KillDescendants(pid int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		kids := Children(pid)
		reap()
		if len(kids) == 0 {
			if reap() {
				continue
			}
			return
		}
		for _, k := range kids {
			_ = syscall.Kill(k, syscall.SIGSTOP)
		}
		for _, k := range kids {
			_ = syscall.Kill(k, syscall.SIGKILL)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reap collects every child that has exited, without blocking, and reports
// whether it collected any.
func reap() bool {
	got := false
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return got
		}
		got = true
	}
}

// Children lists the processes whose parent is pid (zombies included), by
// reading /proc/PID/stat of every process: it needs no kernel option
// (/proc/PID/task/TID/children does).
func Children(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, err := parentOf(p); err == nil && pp == pid {
			out = append(out, p)
		}
	}
	return out
}

// parentOf reads the parent PID from /proc/PID/stat ("pid (comm) state
// ppid ..."; comm may hold spaces and parentheses, so it is cut at the
// last ')').
func parentOf(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, errors.New("malformed stat")
	}
	return strconv.Atoi(f[1])
}

func without(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}
