// Command tokpulse-agent watches a TokPulse server: it samples the host,
// serves Prometheus metrics and reports to systemd. This file holds the
// command line only: flags, subcommands and signals; the work is in agent/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/tokpulse/tokpulse-agent/agent"
	"github.com/tokpulse/tokpulse-agent/internal/reaper"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// Set by the Makefile through -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

const usage = `tokpulse-agent: the TokPulse host monitoring agent.

Usage:
  tokpulse-agent run     [--config FILE] [--web.config.file FILE]   run the daemon
  tokpulse-agent check   [--config FILE] [--as-user NAME]           validate a configuration (as the service's user)
  tokpulse-agent status  [--config FILE | --url URL] [--json]       show the running agent's collectors, probes, alerts
  tokpulse-agent test    rules FILE...                              run rule unit tests (promtool's test rules format)
  tokpulse-agent config  default                                    print the embedded default configuration
  tokpulse-agent notify  test [--config FILE]                       send a test alert through every notify output
  tokpulse-agent version                                            print version, commit and Go version

Without --config the embedded default configuration is used.
`

// StopDeadline is how long after SIGTERM the process exits at the latest,
// clean shutdown or not: the README promises 10 s.
const StopDeadline = agent.ShutdownTimeout + 1500*time.Millisecond

func main() {
	// A check command's reaper is this binary started again; it never
	// returns from here.
	reaper.Main()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "status":
		return cmdStatus(args[1:], stdout, stderr)
	case "test":
		if len(args) >= 3 && args[1] == "rules" {
			if !agent.TestRules(stdout, args[2:]...) {
				return 1
			}
			return 0
		}
		fmt.Fprint(stderr, usage)
		return 2
	case "config":
		if len(args) == 2 && args[1] == "default" {
			_, _ = stdout.Write(agent.DefaultConfigYAML())
			return 0
		}
		fmt.Fprint(stderr, usage)
		return 2
	case "notify":
		if len(args) >= 2 && args[1] == "test" {
			return cmdNotifyTest(args[2:], stdout, stderr)
		}
		fmt.Fprint(stderr, usage)
		return 2
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "tokpulse-agent %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
		return 2
	}
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

// configFlag declares --config on a subcommand's flag set.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "configuration file (default: the embedded default)")
}

// loadConfig loads the configuration, printing every problem on failure.
func loadConfig(file string, stderr io.Writer) (*agent.Config, bool) {
	cfg, err := agent.Load(file)
	if err != nil {
		printProblems(stderr, err)
		return nil, false
	}
	return cfg, true
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := configFlag(fs)
	asUser := fs.String("as-user", "", "run the check as this user (needs root), to prove the service's user can read every file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *asUser != "" {
		return checkAsUser(*asUser, *configFile, stdout, stderr)
	}
	cfg, ok := loadConfig(*configFile, stderr)
	if !ok {
		return 1
	}
	name := *configFile
	if name == "" {
		name = agent.DefaultConfigName
	}
	v, err := agent.Validate(cfg, *configFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK (interval %s, listen %s, %d rules in %d rule files)\n", name, cfg.Agent.Interval, cfg.Web.Listen, v.Rules, len(v.RuleFiles))
	for _, f := range v.RuleFiles {
		fmt.Fprintf(stdout, "  %s: OK\n", f)
	}
	for _, w := range v.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	return 0
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := configFlag(fs)
	webConfig := fs.String("web.config.file", "", "exporter-toolkit web configuration file for TLS and basic auth (overrides web.config_file)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, ok := loadConfig(*configFile, stderr)
	if !ok {
		return 1
	}
	if *webConfig != "" {
		if err := agent.CheckWebConfigFile(*webConfig); err != nil {
			fmt.Fprintf(stderr, "--web.config.file: %v\n", err)
			return 1
		}
		cfg.Web.ConfigFile = *webConfig
	}
	// The same validation as check, so that what check passes starts.
	v, err := agent.Validate(cfg, *configFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(cfg.Agent.Log.Level))
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	if cfg.Agent.Log.Format == "json" {
		h = slog.NewJSONHandler(stderr, hopts)
	}
	logger := slog.New(h)
	for _, w := range v.Warnings {
		logger.Warn("Configuration warning: " + w)
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

	a, err := agent.New(cfg, agent.Options{
		ConfigFile: *configFile,
		Logger:     logger,
		Level:      level,
		Build:      buildInfo(),
		Reload:     reload,
	})
	if err != nil {
		logger.Error("Cannot start", "err", err)
		return 1
	}
	if err := a.Run(ctx); err != nil {
		logger.Error("Agent failed", "err", err)
		return 1
	}
	return 0
}

func cmdNotifyTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("notify test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, ok := loadConfig(*configFile, stderr)
	if !ok {
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return agent.NotifyTest(ctx, cfg, buildInfo(), stdout)
}
