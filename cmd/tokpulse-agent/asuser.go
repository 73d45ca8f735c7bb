package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// checkAsUser runs `tokpulse-agent check` again as another user, so that an
// administrator proves, before a restart, that the service's user can read
// every file the configuration names (secrets of mode 0600 owned by root
// pass a check run as root and stop the service). The child gets the
// user's primary and supplementary groups, as systemd's User= gives them
// (the unit's SupplementaryGroups= come on top: add them to the user, or
// run the unit's own ExecStartPre).
func checkAsUser(name, configFile string, stdout, stderr io.Writer) int {
	if os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "check --as-user needs root to change user; run: sudo tokpulse-agent check --as-user %s\n", name)
		return 2
	}
	u, err := user.Lookup(name)
	if err != nil {
		fmt.Fprintf(stderr, "check --as-user: %v (name an existing user, e.g. tokpulse-agent)\n", err)
		return 2
	}
	cred, err := credential(u)
	if err != nil {
		fmt.Fprintf(stderr, "check --as-user %s: %v\n", name, err)
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "check --as-user: finding this program: %v\n", err)
		return 2
	}
	args := []string{"check"}
	if configFile != "" {
		args = append(args, "--config", configFile)
	}
	cmd := exec.Command(self, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = append(os.Environ(), "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	fmt.Fprintf(stdout, "checking as user %s (uid %d, gid %d, groups %v)\n", u.Username, cred.Uid, cred.Gid, cred.Groups)
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	default:
		fmt.Fprintf(stderr, "check --as-user %s: %v\n", name, err)
		return 2
	}
}

func credential(u *user.User) (*syscall.Credential, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid %q: %w", u.Gid, err)
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("listing the groups of %s: %w", u.Username, err)
	}
	c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	for _, g := range ids {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("group id %q: %w", g, err)
		}
		c.Groups = append(c.Groups, uint32(n))
	}
	return c, nil
}
