// Package nspawn boots a throwaway Debian system under systemd-nspawn, so
// that tests can exercise the agent with a real systemd as PID 1: install
// packages with dpkg, start units, read the journal, talk to D-Bus.
//
// The build machines have no systemd of their own. As root, this package
// makes (once, then from a cache) a minimal Debian tree with debootstrap and
// boots it with "systemd-nspawn --boot --volatile=overlay", so each container
// starts from the pristine tree and every change lands in a tmpfs that
// vanishes with it. Commands run inside through "nsenter -t PID -a", where
// PID is the container's systemd.
//
// Every function fails, never skips, when it is not run as root or a tool is
// missing: .ci/deps installs debootstrap and systemd-container.
//
// In a test:
//
//	c := nspawn.Start(t, nspawn.Options{})  // booted; stopped at cleanup
//	out, err := c.Exec(ctx, "systemctl", "is-active", "dbus.service")
//	err = c.CopyIn(ctx, "testdata/app.log", "/var/log/tokpulse/app.log", 0o640)
//	out, err = c.HostExec(ctx, "curl", "-fsS", "http://127.0.0.1:9847/metrics")
//
// The first call per tree runs debootstrap (about a minute, 240 MB, from the
// mirror in the host's apt sources); later ones boot in about a second.
// Options.Include adds packages (a separate cached tree per list): the
// container has no network of its own to install them later.
package nspawn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultCacheDir holds the debootstrapped trees between test runs.
const DefaultCacheDir = "/var/cache/tokpulse-agent-test"

// DefaultVersion keys the cached tree. Bump it when the way the tree is made
// changes, so that stale trees are not reused.
const DefaultVersion = "1"

// debianSources is where the machine's own apt sources live; the mirror of
// the tree comes from there so tests use whatever mirror the host can reach.
const debianSources = "/etc/apt/sources.list.d/debian.sources"

// osRelease names the host's own Debian release (VERSION_CODENAME).
const osRelease = "/etc/os-release"

// basePackages are always in the tree: systemd as init, and D-Bus so that
// systemctl and the agent's unit collector have a bus to talk to.
var basePackages = []string{"systemd", "systemd-sysv", "dbus"}

// Options says which tree to boot. The zero value boots Debian bookworm with
// systemd and D-Bus, cached under DefaultCacheDir.
type Options struct {
	// Suite is the Debian release; default "bookworm".
	Suite string
	// CacheDir holds cached trees; default DefaultCacheDir.
	CacheDir string
	// Version keys the cache; default DefaultVersion.
	Version string
	// Include lists Debian packages added to the tree beyond systemd,
	// systemd-sysv and dbus. Each distinct list is a tree of its own.
	Include []string
	// Mirror is the Debian mirror; default: the first URI of the suite in
	// /etc/apt/sources.list.d/debian.sources.
	Mirror string
	// Log receives debootstrap's and the container's console output; nil
	// keeps them only for error messages.
	Log io.Writer
}

func (o Options) withDefaults() (Options, error) {
	if o.Suite == "" {
		o.Suite = "bookworm"
	}
	if o.CacheDir == "" {
		o.CacheDir = DefaultCacheDir
	}
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if o.Mirror == "" {
		m, err := Mirror(debianSources, osRelease, o.Suite)
		if err != nil {
			return o, err
		}
		o.Mirror = m
	}
	return o, nil
}

// Mirror returns the Debian mirror to bootstrap suite from: the first URI
// of the suite in the apt sources file, or else the one of the host's own
// release (VERSION_CODENAME in osRelease). A bookworm host lists only
// bookworm, but the same mirror serves bullseye and trixie too.
func Mirror(sources, osRelease, suite string) (string, error) {
	m, err := MirrorFromSources(sources, suite)
	if err == nil {
		return m, nil
	}
	data, rerr := os.ReadFile(osRelease)
	if rerr != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if host, ok := strings.CutPrefix(line, "VERSION_CODENAME="); ok && host != "" && host != suite {
			if m, herr := MirrorFromSources(sources, strings.Trim(host, `"`)); herr == nil {
				return m, nil
			}
		}
	}
	return "", err
}

// treeName names the cached tree of these options: suite, version and a
// short hash of the extra packages.
func (o Options) treeName() string {
	name := o.Suite + "-v" + o.Version
	if len(o.Include) > 0 {
		inc := slices.Clone(o.Include)
		slices.Sort(inc)
		sum := sha256.Sum256([]byte(strings.Join(inc, ",")))
		name += "-" + hex.EncodeToString(sum[:4])
	}
	return name
}

// MirrorFromSources returns the first URI of a deb822 apt sources file whose
// Suites include suite.
func MirrorFromSources(path, suite string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading apt sources for the Debian mirror: %w (set Options.Mirror)", err)
	}
	// deb822: stanzas separated by blank lines, "Key: value" fields.
	for stanza := range strings.SplitSeq(string(data), "\n\n") {
		var uris, suites []string
		for line := range strings.SplitSeq(stanza, "\n") {
			key, val, ok := strings.Cut(line, ":")
			if !ok || strings.HasPrefix(line, "#") {
				continue
			}
			switch strings.TrimSpace(key) {
			case "URIs":
				uris = strings.Fields(val)
			case "Suites":
				suites = strings.Fields(val)
			}
		}
		if len(uris) > 0 && slices.Contains(suites, suite) {
			return uris[0], nil
		}
	}
	return "", fmt.Errorf("no source for suite %q in %s (set Options.Mirror)", suite, path)
}

// checkHost fails unless this process is root and the tools are installed.
func checkHost() error {
	if os.Geteuid() != 0 {
		return errors.New("booting a systemd container needs root; run the tests as root")
	}
	var missing []string
	for tool, pkg := range map[string]string{
		"debootstrap":    "debootstrap",
		"systemd-nspawn": "systemd-container",
		"nsenter":        "util-linux",
	} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" (Debian package "+pkg+")")
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("missing %s; run .ci/deps", strings.Join(missing, ", "))
	}
	return nil
}

// Tree returns the path of the cached Debian tree for opts, making it with
// debootstrap first if needed. Concurrent callers (several test binaries)
// wait on a lock file rather than bootstrap twice. The tree is the read-only
// lower layer of every container: never write into it.
func Tree(ctx context.Context, opts Options) (string, error) {
	if err := checkHost(); err != nil {
		return "", err
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("creating the container cache: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(opts.CacheDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("opening the container cache lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking the container cache: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	root := filepath.Join(opts.CacheDir, opts.treeName())
	if _, err := os.Stat(filepath.Join(root, "usr", "lib", "systemd", "systemd")); err == nil {
		return root, nil
	}
	// Build beside the final place and rename, so a killed debootstrap
	// never leaves a half tree that looks complete.
	tmp := root + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", fmt.Errorf("removing a stale partial tree: %w", err)
	}
	include := strings.Join(append(slices.Clone(basePackages), opts.Include...), ",")
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+include, opts.Suite, tmp, opts.Mirror)
	cmd.Stdout, cmd.Stderr = teeTo(&out, opts.Log), teeTo(&out, opts.Log)
	if err := cmd.Run(); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("debootstrap %s from %s: %w\n%s", opts.Suite, opts.Mirror, err, tail(out.String(), 40))
	}
	// The host's name leaks in through debootstrap; without /etc/hostname
	// the container is named after its machine name.
	_ = os.Remove(filepath.Join(tmp, "etc", "hostname"))
	if err := os.Rename(tmp, root); err != nil {
		return "", fmt.Errorf("moving the new tree into the cache: %w", err)
	}
	return root, nil
}

// Run runs argv in a throwaway container of the tree for opts without
// booting it: no systemd runs inside (/run/systemd/system is absent), as in
// a chroot or an image build. binds maps host paths to paths inside, bound
// read-only. It returns the combined output; a non-zero exit is an error.
func Run(ctx context.Context, opts Options, binds map[string]string, argv ...string) ([]byte, error) {
	root, err := Tree(ctx, opts)
	if err != nil {
		return nil, err
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := "tp-run-" + hex.EncodeToString(suffix[:])
	args := []string{"--quiet", "--register=no", "--keep-unit", "--volatile=overlay", "--private-network",
		"--as-pid2", "--console=pipe", "--machine=" + name, "--directory=" + root}
	for src, dst := range binds {
		args = append(args, "--bind-ro="+src+":"+dst)
	}
	args = append(args, "--")
	args = append(args, argv...)
	cmd := exec.CommandContext(ctx, "systemd-nspawn", args...)
	cmd.Env = append(os.Environ(), containerEnv...)
	out, err := cmd.CombinedOutput()
	_ = os.RemoveAll(filepath.Join("/run/systemd/nspawn/propagate", name))
	if err != nil {
		return out, fmt.Errorf("in unbooted container: %q: %w\n%s", argv, err, tail(string(out), 30))
	}
	return out, nil
}

// Container is one booted system. Its methods are safe for concurrent use.
type Container struct {
	name    string
	root    string
	cmd     *exec.Cmd // systemd-nspawn, the process this package started
	pid     int       // the container's systemd, as seen from the host
	console *lockedBuffer
	done    chan struct{}
	waitErr error
	stop    sync.Once
	stopErr error
}

// Boot starts a container from the cached tree of opts (making it first if
// needed) and returns once systemd inside reports "running" (or "degraded",
// which Boot reports as an error naming the failed units). Call Stop when
// done.
func Boot(ctx context.Context, opts Options) (*Container, error) {
	root, err := Tree(ctx, opts)
	if err != nil {
		return nil, err
	}
	opts, _ = opts.withDefaults()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	c := &Container{
		name:    "tp-test-" + hex.EncodeToString(suffix[:]),
		root:    root,
		console: &lockedBuffer{},
		done:    make(chan struct{}),
	}
	// --keep-unit: there is no host systemd to allocate a scope from.
	// --private-network: the container's loopback is its own, so an agent
	// inside listens on 127.0.0.1:9847 without clashing with the host's.
	// --volatile=overlay: every change goes to a tmpfs, the tree stays clean.
	c.cmd = exec.Command("systemd-nspawn",
		"--quiet", "--boot", "--register=no", "--keep-unit",
		"--volatile=overlay", "--private-network",
		"--console=pipe", "--machine="+c.name, "--directory="+root)
	c.cmd.Stdin = nil
	c.cmd.Stdout, c.cmd.Stderr = teeTo(c.console, opts.Log), teeTo(c.console, opts.Log)
	// Its own process group, so a terminal's Ctrl-C reaches the test, which
	// then stops the container cleanly.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting systemd-nspawn: %w", err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.done)
	}()
	if err := c.waitBooted(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

// Start boots a container for a test, fails the test if it cannot, and
// stops the container when the test ends.
func Start(t testing.TB, opts Options) *Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := Boot(ctx, opts)
	if err != nil {
		t.Fatalf("booting a systemd container: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping the container: %v", err)
		}
	})
	return c
}

// waitBooted finds the container's init and waits for systemd to finish
// booting.
func (c *Container) waitBooted(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for c.pid == 0 {
		select {
		case <-c.done:
			return fmt.Errorf("systemd-nspawn exited during boot: %v\n%s", c.waitErr, tail(c.console.String(), 40))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no init process appeared under systemd-nspawn (pid %d) within 60s\n%s", c.cmd.Process.Pid, tail(c.console.String(), 40))
		}
		c.pid = childOf(c.cmd.Process.Pid)
		if c.pid == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	// systemctl cannot connect until systemd has set up its private
	// socket; retry that (and only that) until the deadline.
	var state string
	for {
		wctx, cancel := context.WithTimeout(ctx, time.Until(deadline))
		out, err := c.Exec(wctx, "systemctl", "is-system-running", "--wait")
		cancel()
		state = strings.TrimSpace(string(out))
		if state == "running" || state == "degraded" {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("systemd in the container did not finish booting within 60s (state %q, %v)\n%s", state, err, tail(c.console.String(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if state == "degraded" {
		out, _ := c.Exec(ctx, "systemctl", "--failed", "--no-legend", "--plain")
		return fmt.Errorf("the container booted degraded; failed units:\n%s", out)
	}
	return nil
}

// childOf returns the PID of the container's init: the child of
// systemd-nspawn (pid ppid) that runs systemd, or 0 while there is none yet.
// Before it, systemd-nspawn's own helper children come and go in the host's
// namespaces, and entering those would run commands on the host.
func childOf(ppid int) int {
	var kids []int
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", ppid, ppid)); err == nil {
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				kids = append(kids, pid)
			}
		}
	} else {
		// Kernels without CONFIG_PROC_CHILDREN: scan every process.
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			if pid, err := strconv.Atoi(e.Name()); err == nil && parentOf(pid) == ppid {
				kids = append(kids, pid)
			}
		}
	}
	for _, pid := range kids {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && strings.TrimSpace(string(comm)) == "systemd" {
			return pid
		}
	}
	return 0
}

// parentOf returns the parent PID of pid, or 0.
func parentOf(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PPid:"); ok {
			p, _ := strconv.Atoi(strings.TrimSpace(v))
			return p
		}
	}
	return 0
}

// PID is the container's init (systemd) as seen from the host.
func (c *Container) PID() int { return c.pid }

// Name is the container's machine name, also its host name.
func (c *Container) Name() string { return c.name }

// Console returns what the container has printed on its console so far.
func (c *Container) Console() string { return c.console.String() }

// containerEnv is the environment of commands run inside: the host's would
// leak PATHs and locales the container does not have.
var containerEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LANG=C.UTF-8",
	"TERM=dumb",
	"HOME=/root",
	"SYSTEMD_PAGER=",
	"SYSTEMD_COLORS=0",
	"DEBIAN_FRONTEND=noninteractive",
}

// Command returns a command that runs argv inside the container, in all of
// its namespaces, as root. Set its Stdin, Stdout and Stderr as needed.
func (c *Container) Command(ctx context.Context, argv ...string) *exec.Cmd {
	args := append([]string{"-t", strconv.Itoa(c.pid), "-a", "--"}, argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Env = containerEnv
	return cmd
}

// Exec runs argv inside the container and returns its combined output. A
// non-zero exit is an error that quotes the command and its output.
func (c *Container) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	cmd := c.Command(ctx, argv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("in container %s: %q: %w\n%s", c.name, argv, err, tail(string(out), 30))
	}
	return out, nil
}

// HostExec runs a host program (argv[0] from the host's PATH) in the
// container's network namespace only, and returns its combined output. It
// reaches services listening on the container's loopback with the host's
// tools, e.g. HostExec(ctx, "curl", "-fsS", "http://127.0.0.1:9847/metrics").
func (c *Container) HostExec(ctx context.Context, argv ...string) ([]byte, error) {
	args := append([]string{"-t", strconv.Itoa(c.pid), "-n", "--"}, argv...)
	out, err := exec.CommandContext(ctx, "nsenter", args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("in the network of container %s: %q: %w\n%s", c.name, argv, err, tail(string(out), 30))
	}
	return out, nil
}

// Listen opens a listener in the container's network namespace, for a
// server the test runs (a webhook receiver) that programs inside reach on
// the container's own loopback. The socket stays in that namespace;
// accepting and serving need no further switch.
func (c *Container) Listen(network, address string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Locked and never unlocked: the thread, once moved into the
		// container's namespace, ends with this goroutine instead of
		// going back to the runtime's pool.
		runtime.LockOSThread()
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", c.pid))
		if err != nil {
			ch <- result{nil, fmt.Errorf("opening the network namespace of container %s: %w", c.name, err)}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("entering the network namespace of container %s: %w", c.name, err)}
			return
		}
		ln, err := net.Listen(network, address)
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

// CopyIn copies the host file src to dst inside the container, creating
// dst's directory, with the given mode, owned by root.
func (c *Container) CopyIn(ctx context.Context, src, dst string, mode os.FileMode) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying into the container: %w", err)
	}
	defer f.Close()
	return c.WriteFile(ctx, dst, f, mode)
}

// WriteFile writes what r yields to path inside the container, creating its
// directory, with the given mode, owned by root.
func (c *Container) WriteFile(ctx context.Context, path string, r io.Reader, mode os.FileMode) error {
	cmd := c.Command(ctx, "sh", "-c", `mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"`,
		"sh", path, strconv.FormatUint(uint64(mode.Perm()), 8))
	cmd.Stdin = r
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("writing %s in container %s: %w\n%s", path, c.name, err, out)
	}
	return nil
}

// UseHostBootID makes the container's boot ID the kernel's, as on a real
// host, and restarts journald so that new journal entries carry it.
//
// systemd-nspawn gives each container a random boot ID by mounting a file
// over /proc/sys/kernel/random/boot_id. A unit with ProtectKernelTunables=,
// ProtectControlGroups= or anything else that mounts a fresh /proc sees the
// kernel's boot ID instead, and "journalctl --follow" there shows only
// entries of that boot: none of the container's. On a real host both IDs
// are the same; call this before testing a sandboxed journal reader.
func (c *Container) UseHostBootID(ctx context.Context) error {
	_, err := c.Exec(ctx, "sh", "-ec", `umount /proc/sys/kernel/random/boot_id
systemctl restart systemd-journald`)
	return err
}

// Stop halts the container: SIGTERM to the systemd-nspawn process this
// package started makes it shut the system down cleanly; if that takes
// longer than 30 s, SIGKILL ends it. Stop is idempotent.
func (c *Container) Stop() error {
	c.stop.Do(func() {
		p := c.cmd.Process
		_ = p.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			_ = p.Kill()
			<-c.done
			c.stopErr = fmt.Errorf("container %s did not halt within 30s of SIGTERM; killed it\n%s", c.name, tail(c.console.String(), 30))
		}
		// systemd-nspawn leaves its mount propagation directory behind
		// when /run is not a tmpfs (as in a Docker build container).
		_ = os.RemoveAll(filepath.Join("/run/systemd/nspawn/propagate", c.name))
	})
	return c.stopErr
}

// teeTo writes to buf and, when log is not nil, to log as well.
func teeTo(buf io.Writer, log io.Writer) io.Writer {
	if log == nil {
		return buf
	}
	return io.MultiWriter(buf, log)
}

// tail returns the last n lines of s, for error messages.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lockedBuffer is a bytes.Buffer written by the console goroutines and read
// by tests.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
