// Command tokpulse-agent watches a TokPulse server: it samples the host,
// follows its logs and journal, probes its endpoints, evaluates the incident
// runbook's rules and delivers alerts. This package holds the command line
// only: the table of subcommands (cli.go), their flags, and signals; the
// work is in agent/.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tokpulse/tokpulse-agent/actions"
	"github.com/tokpulse/tokpulse-agent/agent"
	"github.com/tokpulse/tokpulse-agent/internal/memlimit"
	"github.com/tokpulse/tokpulse-agent/internal/reaper"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// Set by the Makefile through -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

// StopDeadline is how long after SIGTERM the process exits at the latest,
// clean shutdown or not: the README promises 10 s.
const StopDeadline = agent.ShutdownTimeout + 1500*time.Millisecond

func main() {
	// A check command's reaper is this binary started again; it never
	// returns from here.
	reaper.Main()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args with the system configuration file
// SystemConfigFile, and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	return (&cli{stdout: stdout, stderr: stderr, systemConfig: SystemConfigFile, service: agent.PackagedService(),
		policyDirs: actions.DefaultPolicyDirs()}).main(args)
}

func buildInfo() agent.BuildInfo {
	return agent.BuildInfo{Version: version, Commit: commit, GoVersion: runtime.Version()}
}

// printProblems writes each configuration problem on its own line.
func printProblems(w io.Writer, err error) {
	var ps yamlx.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			fmt.Fprintln(w, p.String())
		}
		return
	}
	fmt.Fprintln(w, err)
}

// loadConfig loads the configuration file ("" for the embedded default),
// printing every problem on failure.
func loadConfig(file string, stderr io.Writer) (*agent.Config, bool) {
	cfg, err := agent.Load(file)
	if err != nil {
		printProblems(stderr, err)
		return nil, false
	}
	return cfg, true
}

// configName is how messages name a configuration file.
func configName(file string) string {
	if file == "" {
		return agent.DefaultConfigName
	}
	return file
}

func runCommand() *command {
	return &command{
		name:    "run",
		summary: "run the daemon",
		help: `Run the agent in the foreground until SIGTERM or SIGINT. It samples the
host, follows the log files and the journal, runs the probes and checks,
evaluates the alerting rules every agent.interval, delivers alert events to
the notify outputs, and serves /metrics and its API on web.listen. Under
systemd it speaks sd_notify (READY, RELOADING, STOPPING, WATCHDOG, STATUS).

When the configuration does not load at start (a typo, a broken rule file),
the agent runs on the last good copy it keeps in its state directory, logs
every problem at error level and raises its own P2 alert
(TokPulseAgentConfigInvalid); without such a copy it exits with status 1.

SIGHUP reloads the configuration and the rule files, all or nothing: a
configuration that does not build is refused and logged at error level, and
the running one stays in force (see reload).`,
		setup: func(c *cli, fs *flag.FlagSet) func([]string) int {
			config := configFlag(fs)
			web := fs.String("web.config.file", "", "exporter-toolkit web configuration `FILE` for TLS and basic auth (overrides web.config_file)")
			return func([]string) int { return c.run(c.configFile(*config), *web) }
		},
	}
}

func checkCommand() *command {
	return &command{
		name:    "check",
		args:    "[FILE...]",
		maxArgs: -1,
		summary: "validate configuration files and their rule files",
		help: `Validate configuration files as the agent loads them, together with the
rule files each one names, and print every problem as
"file:line:column: key: what is wrong". Each FILE given is checked, as
"promtool check config" checks its arguments; without one, the file of
--config, else ` + SystemConfigFile + ` if it exists, else the embedded
default configuration. The output names the file checked.

It runs exactly the validation the daemon runs at start and on reload (the
same build of collectors, rules and outputs, reading every secret, CA and
template file as the user it runs as); --as-user NAME runs it as another
user, to prove what the service's user can read.

The exit status is 0 when every file is valid and 1 otherwise; an action
whose restart_unit the installed polkit policy does not allow makes a file
invalid. Warnings do not change it: a secret file that the service user
tokpulse-agent could not read or that every user can read, a rule_files
glob whose directory does not exist, and an action on an alert no loaded
rule defines.`,
		setup: func(c *cli, fs *flag.FlagSet) func([]string) int {
			config := configFlag(fs)
			asUser := fs.String("as-user", "", "check as the user `NAME` (needs root), to prove that the service's user can read every file the configuration names")
			return func(files []string) int {
				if *config != "" && len(files) > 0 {
					fmt.Fprint(c.stderr, checkCommand().usageError("name the files either with --config or as arguments, not both"))
					return 2
				}
				if *config != "" {
					files = []string{*config}
				}
				if *asUser != "" {
					if len(files) > 1 {
						fmt.Fprint(c.stderr, checkCommand().usageError("--as-user checks one file"))
						return 2
					}
					file := c.configFile("")
					if len(files) == 1 {
						file = files[0]
					}
					return checkAsUser(*asUser, file, c.stdout, c.stderr)
				}
				return c.check(files)
			}
		},
	}
}

func testRulesCommand() *command {
	return &command{
		name: "test rules",
		args: "FILE...",
		rawFlags: []flagDoc{
			{"debug", "", "print the series and every evaluation while testing"},
			{"diff", "", "show expected and received alerts as a diff"},
			{"ignore-unknown-fields", "", "accept keys rulefmt does not know in the rule files"},
			{"junit", "FILE", "write a JUnit XML report to FILE"},
			{"run", "REGEX", "run only the test groups whose name matches; repeatable"},
		},
		summary: "run rule unit tests, as promtool test rules does",
		help: `Run rule unit test files, written in promtool's "test rules" format, with the
agent's own rule loader, PromQL engine and incident tracker. Flags, output
(stdout and stderr), JUnit report and exit codes are promtool's: a CI job
can swap promtool for the agent by changing the binary's name. --run
selects test groups by a regular expression (repeatable), --junit writes
a JUnit XML report, --diff shows expected and received alerts as a diff.
The exit status is 0 when every test passes and 1 otherwise.`,
		raw: func(c *cli, args []string) int { return cmdTest(args, c.stdout, c.stderr) },
	}
}

func checkRulesCommand() *command {
	return &command{
		name: "check rules",
		args: "[FILE...]",
		rawFlags: []flagDoc{
			{"ignore-unknown-fields", "", "accept keys rulefmt does not know"},
			{"lint", "MODE", "all, duplicate-rules (the default) or none"},
			{"lint-fatal", "", "exit 3 when the linter finds a problem"},
		},
		summary: "check rule files, as promtool check rules does",
		help: `Check rule files as the agent loads them (Prometheus' rulefmt, plus the
agent's requirement of a severity P1-P4 on every alerting rule), with
promtool's output and exit codes: 0 when every file is valid, 1 when one is
not, 3 with --lint-fatal when the linter finds duplicate rules. Without a
FILE the rules are read from standard input.`,
		raw: func(c *cli, args []string) int { return cmdCheckRules(args, os.Stdin, c.stdout, c.stderr) },
	}
}

func notifyTestCommand() *command {
	return &command{
		name:    "notify test",
		summary: "send a test alert through every notify output, by the running agent",
		help: `Ask the running agent to send a test alert (TokPulseNotifyTest, severity P4,
firing and then resolved) through every one of its notify outputs, and
print OK or FAIL with the reason for each output. The agent sends it as the
service's user, with the secrets and the configuration it runs on, so that
OK means the service's own path works (POST /api/v1/notify/test). It is
found as status finds it: at web.listen of the configuration (--config,
else ` + SystemConfigFile + ` if it exists, else the embedded default), over
HTTPS when its web.config_file sets TLS, or at --url; --http.config.file
gives the credentials of an agent behind basic auth. Only the web section
of the file is read here (its secrets may be unreadable to you); the
outputs are those the agent has loaded. The first lines name the
configuration and the agent.

With --direct the test is sent from this process instead, as the user who
runs it, through the outputs of the configuration file, without a running
agent; a secret file only this user can read then passes, and check warns
about it.

The exit status is 1 when any output failed, when there is none, or when
the agent cannot be reached.`,
		setup: func(c *cli, fs *flag.FlagSet) func([]string) int {
			config := configFlag(fs)
			api := declareAPIFlags(fs)
			direct := fs.Bool("direct", false, "send from this process, as this user, instead of asking the running agent")
			return func([]string) int {
				if *direct && (*api.url != "" || *api.httpConfig != "") {
					fmt.Fprint(c.stderr, notifyTestCommand().usageError("--direct sends without the agent; it takes no --url or --http.config.file"))
					return 2
				}
				if *direct {
					return c.notifyTestDirect(c.configFile(*config))
				}
				return c.notifyTest(c.configFile(*config), api)
			}
		},
	}
}

func configDefaultCommand() *command {
	return &command{
		name:    "config default",
		summary: "print the embedded default configuration",
		help: `Print the embedded default configuration: what the agent runs on when no
configuration file is given and ` + SystemConfigFile + ` does not exist.`,
		setup: func(c *cli, _ *flag.FlagSet) func([]string) int {
			return func([]string) int {
				_, _ = c.stdout.Write(agent.DefaultConfigYAML())
				return 0
			}
		},
	}
}

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print version, commit and Go version",
		help:    `Print the version, the commit and the Go version the binary was built with.`,
		setup: func(c *cli, _ *flag.FlagSet) func([]string) int {
			return func([]string) int {
				fmt.Fprintf(c.stdout, "tokpulse-agent %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
				return 0
			}
		},
	}
}

// check checks each configuration file ("" for the embedded default); no
// file means the default resolution of --config.
func (c *cli) check(files []string) int {
	if len(files) == 0 {
		file := c.configFile("")
		if file == "" {
			fmt.Fprintf(c.stderr, "note: %s does not exist; checking the embedded default configuration\n", c.systemConfig)
		}
		files = []string{file}
	}
	code := 0
	for _, f := range files {
		if !c.checkFile(f) {
			code = 1
		}
	}
	return code
}

// checkFile checks one configuration file and the rule files it names,
// with the daemon's own build (agent.Validate).
func (c *cli) checkFile(file string) bool {
	name := configName(file)
	v, err := agent.Validate(file)
	if err != nil {
		printProblems(c.stderr, err)
		return false
	}
	cfg := v.Config
	problems, warnings, notes := agent.CheckActions(cfg, file, c.policyDirs)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(c.stderr, finding(name, p))
		}
		return false
	}
	fmt.Fprintf(c.stdout, "%s: OK (interval %s, listen %s, %d rules in %d rule files)\n", name, cfg.Agent.Interval, cfg.Web.Listen, v.Rules, len(v.RuleFiles))
	for _, f := range v.RuleFiles {
		fmt.Fprintf(c.stdout, "  %s: OK\n", f)
	}
	for _, a := range cfg.Actions {
		fmt.Fprintf(c.stdout, "  action %s\n", a.String())
	}
	for _, n := range notes {
		fmt.Fprintf(c.stdout, "  note: %s\n", finding(name, n))
	}
	for _, w := range warnings {
		fmt.Fprintf(c.stderr, "warning: %s\n", finding(name, w))
	}
	for _, w := range v.Warnings {
		fmt.Fprintf(c.stderr, "warning: %s\n", w)
	}
	// Run by an operator as root, check can read every file; say which ones
	// the service's user could not (check --as-user proves it by running
	// as that user).
	for _, w := range agent.UnreadableFiles(cfg, c.service) {
		fmt.Fprintf(c.stderr, "warning: %s\n", w)
	}
	// An empty drop-in directory (the package's rules.d) is normal; a glob
	// into a directory that does not exist is likely a typo.
	empty, missing := agent.UnmatchedRuleGlobs(cfg, file)
	for _, g := range empty {
		fmt.Fprintf(c.stdout, "  %s: no file yet\n", g)
	}
	for _, g := range missing {
		fmt.Fprintf(c.stderr, "warning: rule_files: %q: directory %s does not exist\n", g, filepath.Dir(g))
	}
	return true
}

// finding formats an actions.Finding of the file name as check prints
// problems: "file:line: key: message".
func finding(name string, f actions.Finding) string {
	if f.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", name, f.Line, f.Key, f.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", name, f.Key, f.Msg)
}

// run runs the daemon on the configuration file ("" for the embedded
// default) until SIGTERM or SIGINT.
func (c *cli) run(configFile, webConfig string) int {
	// The logger follows agent.log of the file when it loads; when it does
	// not, the agent falls back on its last good configuration and these
	// defaults serve until a reload.
	logCfg := agent.Default().Agent.Log
	if cfg, err := agent.Load(configFile); err == nil {
		logCfg = cfg.Agent.Log
	}
	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(logCfg.Level))
	logger := newLogger(c.stderr, logCfg.Format, level)

	// The daemon's runtime: one P (the agent's work is small and mostly
	// waiting; with one P a gather's or a scrape's fan-out of goroutines
	// wakes no second thread, and the unit caps it at half a core anyway)
	// and a heap goal of 1.6 times the live heap (GOGC 60: 2.4 MB at least
	// instead of 4). The collector's target trades the agent's RSS for
	// its CPU; measured side by side with node_exporter, ten minutes each
	// (docs/performance.md, "Second pass"): GOGC 50 0.98–0.99 of its RSS
	// and 1.31–1.40 of its CPU, 60 0.99 and 1.17–1.23, 70 1.00 and 1.13,
	// 75 1.03 and 1.03. GOMAXPROCS and GOGC in the environment win.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(60)
	}
	// OpenTelemetry's no-op provider, no name escaping (see there).
	agent.SetLibraryDefaults()
	// The Go heap stays below the cgroup's memory limits (the unit's
	// MemoryHigh=/MemoryMax=): the collector works harder before the
	// kernel would throttle or kill the agent.
	if res, err := memlimit.Apply(memlimit.Paths{}); err != nil {
		logger.Warn("Cannot read the cgroup's memory limits; the Go runtime has no memory limit", "err", err)
	} else if res.Source != "" {
		logger.Info("Go memory limit set below the cgroup's", "bytes", res.Limit, "from", res.Source, "cgroup_limit_bytes", res.CgroupLimit)
	}

	if webConfig != "" {
		if err := agent.CheckWebConfigFile(webConfig); err != nil {
			fmt.Fprintf(c.stderr, "--web.config.file: %v\n", err)
			return 1
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Whatever a collector or output is stuck in, SIGTERM ends the
	// process within StopDeadline: the state file is crash-safe, and
	// systemd's stop timeout must never be the one that kills the agent.
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
		case <-finished:
			return
		}
		select {
		case <-time.After(StopDeadline):
			logger.Error("Shutdown did not finish in time; exiting without it", "deadline", StopDeadline)
			os.Exit(1)
		case <-finished:
		}
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}()

	a, err := agent.New(agent.Options{
		ConfigFile:    configFile,
		WebConfigFile: webConfig,
		Logger:        logger,
		Level:         level,
		Build:         buildInfo(),
		Reload:        reload,
		// The daemon's own binary: give back what start-up alone ran.
		ReleaseStartupPages: true,
	})
	if err != nil {
		logger.Error("Cannot start", "err", err)
		return 1
	}
	logger.Info("Configuration loaded", "file", configName(configFile))
	if err := a.Run(ctx); err != nil {
		logger.Error("Agent failed", "err", err)
		return 1
	}
	return 0
}

func reloadCommand() *command {
	return &command{
		name:    "reload",
		summary: "reload the running agent and wait for its verdict",
		help: `Ask the running agent to reload its configuration (SIGHUP) and wait for its
verdict, which it writes to ` + agent.ReloadStatusFile + ` in its state
directory. The exit status is 0 when the new configuration is in force and 1
when the agent refused it (it then keeps running on the old one) or did not
answer in time; the reasons are printed, one problem per line. The unit's
ExecReload= runs it, so that "systemctl reload tokpulse-agent" fails when
the agent refuses the file.`,
		setup: func(c *cli, fs *flag.FlagSet) func([]string) int {
			config := configFlag(fs)
			pid := fs.Int("pid", 0, "the agent's process `ID` (default: $MAINPID, which systemd sets for ExecReload=)")
			stateDir := fs.String("state-dir", "", "the agent's state `DIR` (default: $STATE_DIRECTORY, else agent.state_dir of the configuration)")
			timeout := fs.Duration("timeout", 60*time.Second, "how long to wait for the agent's verdict")
			return func([]string) int { return c.reload(c.configFile(*config), *pid, *stateDir, *timeout) }
		},
	}
}

// reload signals the agent with pid and waits for its verdict.
func (c *cli) reload(configFile string, pid int, stateDir string, timeout time.Duration) int {
	if pid == 0 {
		pid, _ = strconv.Atoi(os.Getenv("MAINPID"))
	}
	if pid <= 0 {
		fmt.Fprint(c.stderr, reloadCommand().usageError("no agent process: pass --pid PID (systemd sets $MAINPID for ExecReload=)"))
		return 2
	}
	if stateDir == "" {
		stateDir = agent.StateDirFor(configFile)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := agent.Reload(ctx, pid, stateDir, 100*time.Millisecond)
	if err != nil {
		fmt.Fprintln(c.stderr, "reload:", err)
		return 1
	}
	fmt.Fprintf(c.stdout, "reloaded %s (reload #%d)\n", st.ConfigFile, st.Seq)
	return 0
}

// notifyTest asks the running agent to send a test alert through its
// outputs, and prints what each did.
func (c *cli) notifyTest(configFile string, f apiFlags) int {
	if *f.url == "" {
		fmt.Fprintf(c.stdout, "Configuration: %s\n", configName(configFile))
	}
	api, ok := c.agentAt(configFile, f)
	if !ok {
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	body, err := api.do(ctx, http.MethodPost, "/api/v1/notify/test", []byte("{}"))
	var se *statusError
	var ue *unreachableError
	switch {
	case errors.As(err, &se) && (se.code == http.StatusNotFound || se.code == http.StatusMethodNotAllowed):
		fmt.Fprintf(c.stderr, "%v\n(the running agent predates POST /api/v1/notify/test: restart it after the upgrade, or use --direct)\n", err)
		return 1
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "%v; --direct sends from this process instead\n", err)
		return 1
	case err != nil:
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	var resp struct {
		Data agent.NotifyTestReport `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		fmt.Fprintf(c.stderr, "unexpected answer from %s: %v\n", api.base, err)
		return 1
	}
	rep := resp.Data
	if *f.url != "" {
		fmt.Fprintf(c.stdout, "Configuration: %s (the agent's)\n", rep.ConfigFile)
	}
	fmt.Fprintf(c.stdout, "Sent by the agent (pid %d, user %s) through its outputs:\n", rep.PID, rep.User)
	if rep.LastGoodInUse {
		fmt.Fprintf(c.stderr, "warning: the agent runs on its last good configuration, because %s does not load (tokpulse-agent check); these are that copy's outputs\n", rep.ConfigFile)
	}
	// Tell an edit that was not reloaded, when this user can load the file
	// (the service's secrets may be unreadable here: nothing to say then).
	if cfg, err := agent.Load(configFile); err == nil && *f.url == "" {
		var theirs []string
		for _, o := range rep.Outputs {
			theirs = append(theirs, o.Output)
		}
		if mine := cfg.Notify.OutputNames(); !slices.Equal(mine, theirs) {
			fmt.Fprintf(c.stderr, "note: %s names the outputs [%s], the running agent has [%s]: it runs the configuration it last loaded; reload it (systemctl reload tokpulse-agent) to apply the file\n",
				configName(configFile), strings.Join(mine, " "), strings.Join(theirs, " "))
		}
	}
	return c.printTestReport(rep)
}

// notifyTestDirect sends a test alert through every output of the
// configuration file ("" for the embedded default) from this process.
func (c *cli) notifyTestDirect(configFile string) int {
	fmt.Fprintf(c.stdout, "Configuration: %s\n", configName(configFile))
	cfg, ok := loadConfig(configFile, c.stderr)
	if !ok {
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	rep, err := agent.NotifyTestDirect(ctx, cfg, configFile, buildInfo())
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	fmt.Fprintf(c.stdout, "Sent from this process (pid %d, user %s), not by the agent:\n", rep.PID, rep.User)
	code := c.printTestReport(rep)
	// What passed here may still fail for the service.
	for _, w := range agent.UnreadableFiles(cfg, c.service) {
		fmt.Fprintf(c.stderr, "warning: %s\n", w)
	}
	return code
}

// printTestReport prints one line per output and returns the exit
// status: 1 when an output failed or there is none.
func (c *cli) printTestReport(rep agent.NotifyTestReport) int {
	if len(rep.Outputs) == 0 {
		fmt.Fprintln(c.stdout, "no notify outputs configured; add notify.webhooks, notify.alertmanagers or notify.files")
		return 1
	}
	code := 0
	for _, o := range rep.Outputs {
		d := time.Duration(o.DurationSeconds * float64(time.Second)).Round(time.Millisecond)
		if !o.OK {
			code = 1
			fmt.Fprintf(c.stdout, "FAIL %s (%s): %s\n", o.Output, d, o.Error)
			continue
		}
		fmt.Fprintf(c.stdout, "OK   %s (%s)\n", o.Output, d)
	}
	return code
}
