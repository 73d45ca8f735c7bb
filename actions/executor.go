package actions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/tokpulse/tokpulse-agent/collectors"
	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// Systemd is the part of a systemd D-Bus connection a restart uses.
type Systemd interface {
	RestartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	Close()
}

// DialSystemd connects to systemd over the system D-Bus, as the unit
// collector does.
func DialSystemd(ctx context.Context) (Systemd, error) {
	c, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// PolkitName is polkit's well-known name on the system bus.
const PolkitName = "org.freedesktop.PolicyKit1"

// PolkitAvailable reports whether polkit's daemon runs or can be started
// by D-Bus activation: without it, systemd refuses every unprivileged
// restart with a bare "Permission denied".
func PolkitAvailable(ctx context.Context) (bool, error) {
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return false, err
	}
	defer conn.Close()
	var owned bool
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, PolkitName).Store(&owned); err != nil {
		return false, err
	}
	if owned {
		return true, nil
	}
	var names []string
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.ListActivatableNames", 0).Store(&names); err != nil {
		return false, err
	}
	return slices.Contains(names, PolkitName), nil
}

// Options configure an Executor.
type Options struct {
	Logger *slog.Logger
	// Redactor cleans command output before it goes into events.
	Redactor *evidence.Redactor
	// Dial connects to systemd; nil means DialSystemd.
	Dial func(ctx context.Context) (Systemd, error)
	// Polkit says whether polkit is there, to explain a refusal; nil
	// means PolkitAvailable.
	Polkit func(ctx context.Context) (bool, error)
	// PolicyUnits are the units the installed polkit policy lets the
	// agent's user restart, named in refusals; may be empty.
	PolicyUnits []string
}

// Executor runs the configured actions for the incident tracker.
type Executor struct {
	cfgs map[string]Config
	opts Options
}

// NewExecutor returns the executor of cfgs.
func NewExecutor(cfgs []Config, opts Options) *Executor {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Redactor == nil {
		opts.Redactor = evidence.NewRedactor()
	}
	if opts.Dial == nil {
		opts.Dial = DialSystemd
	}
	if opts.Polkit == nil {
		opts.Polkit = PolkitAvailable
	}
	e := &Executor{cfgs: map[string]Config{}, opts: opts}
	for _, c := range cfgs {
		e.cfgs[c.Name] = c
	}
	return e
}

// Execute implements incident.Executor: it restarts the unit or runs the
// command of a, within ctx.
func (e *Executor) Execute(ctx context.Context, a incident.Action) incident.Result {
	cfg, ok := e.cfgs[a.Name]
	if !ok {
		return incident.Result{Err: fmt.Errorf("action %s is not configured any more", a.Name)}
	}
	if cfg.RestartUnit != "" {
		return e.restart(ctx, cfg.Unit())
	}
	return e.command(ctx, cfg)
}

// restart restarts unit through systemd's D-Bus API (RestartUnit, mode
// "replace", as systemctl restart) and waits for the job's result.
func (e *Executor) restart(ctx context.Context, unit string) incident.Result {
	deadline, _ := ctx.Deadline()
	timeout := time.Until(deadline).Round(time.Second)
	conn, err := e.opts.Dial(ctx)
	if err != nil {
		return incident.Result{Err: fmt.Errorf("connecting to systemd over the system D-Bus to restart %s: %w (is dbus running?)", unit, err)}
	}
	defer conn.Close()
	// Buffered: go-systemd blocks its signal loop until the result is
	// taken, and nobody may take it once ctx has ended.
	done := make(chan string, 1)
	if _, err := conn.RestartUnitContext(ctx, unit, "replace", done); err != nil {
		return incident.Result{Err: e.explain(ctx, unit, err)}
	}
	select {
	case r := <-done:
		if r == "done" {
			return incident.Result{}
		}
		return incident.Result{Err: fmt.Errorf("systemd's restart job of %s ended %q, not \"done\" (see systemctl status %s and journalctl -u %s)", unit, r, unit, unit)}
	case <-ctx.Done():
		return incident.Result{Err: fmt.Errorf("the restart of %s did not finish within %s; the job goes on in systemd (see systemctl status %s)", unit, timeout, unit)}
	}
}

// explain turns systemd's refusal of a restart into what to do about it.
func (e *Executor) explain(ctx context.Context, unit string, err error) error {
	var derr dbus.Error
	if !errors.As(err, &derr) {
		return fmt.Errorf("asking systemd to restart %s: %w", unit, err)
	}
	allowed := "the installed polkit policy names no unit"
	if len(e.opts.PolicyUnits) > 0 {
		allowed = "the installed polkit policy allows " + strings.Join(e.opts.PolicyUnits, ", ")
	}
	switch derr.Name {
	case "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired":
		return fmt.Errorf("polkit refused to let the agent's user restart %s (systemd: %s); %s: add the unit to a policy file as docs/actions.md shows, or change the action", unit, err, allowed)
	case "org.freedesktop.DBus.Error.AccessDenied":
		present, perr := e.opts.Polkit(ctx)
		if perr == nil && !present {
			return fmt.Errorf("polkitd is not installed (or not running), so nothing lets the agent's user restart %s (systemd: %s); install it (Debian: apt install polkitd; RHEL: dnf install polkit), which the package recommends", unit, err)
		}
		return fmt.Errorf("systemd denied the agent's user the restart of %s: %s; %s (see docs/actions.md)", unit, err, allowed)
	case "org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.systemd1.LoadFailed":
		return fmt.Errorf("systemd has no unit %s to restart: %s; fix restart_unit", unit, err)
	}
	return fmt.Errorf("asking systemd to restart %s: %s (%s)", unit, err, derr.Name)
}

// outputExcerpt bounds what a command's output contributes to an event.
const outputExcerpt = 1024

// command runs cfg's command as a check runs: argv without a shell,
// under a reaper that kills everything it started at the timeout (children
// that left its process group too), with bounded output.
func (e *Executor) command(ctx context.Context, cfg Config) incident.Result {
	r := collectors.RunCheck(ctx, collectors.CheckConfig{
		Name: cfg.Name, Command: cfg.Command, Timeout: yamlx.Duration(cfg.timeout()), Env: cfg.Env, EnvFiles: cfg.EnvFiles,
		Value: "none", MaxOutputBytes: 64 << 10,
	})
	res := incident.Result{Err: r.Err, Output: e.excerpt(r.Stdout, r.Stderr, r.Truncated)}
	if r.Reason == collectors.CheckReasonExit {
		code := r.ExitCode
		res.ExitStatus = &code
	}
	return res
}

// excerpt is the start of stdout and stderr, redacted.
func (e *Executor) excerpt(stdout, stderr string, truncated bool) string {
	var parts []string
	for _, o := range []struct{ name, text string }{{"stdout", stdout}, {"stderr", stderr}} {
		t := strings.TrimSpace(o.text)
		if t == "" {
			continue
		}
		if len(t) > outputExcerpt {
			t, truncated = strings.ToValidUTF8(t[:outputExcerpt], "\uFFFD"), true
		}
		parts = append(parts, o.name+": "+e.opts.Redactor.Redact(t))
	}
	out := strings.Join(parts, "\n")
	if truncated && out != "" {
		out += " …"
	}
	return out
}
