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

	"github.com/tokpulse/tokpulse-agent/agent"
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
  tokpulse-agent check   [--config FILE]                            validate a configuration
  tokpulse-agent status  [--config FILE | --url URL] [--json]       show the running agent's collectors, probes, alerts
  tokpulse-agent check   rules [FILE...]                            check rule files as promtool check rules does
  tokpulse-agent test    rules [--run RE] [--junit FILE] FILE...    run rule unit tests as promtool test rules does
  tokpulse-agent config  default                                    print the embedded default configuration
  tokpulse-agent notify  test [--config FILE]                       send a test alert through every notify output
  tokpulse-agent version                                            print version, commit and Go version

Without --config the embedded default configuration is used.
`

func main() {
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
		if len(args) >= 2 && args[1] == "rules" {
			return cmdCheckRules(args[1:], os.Stdin, stdout, stderr)
		}
		return cmdCheck(args[1:], stdout, stderr)
	case "status":
		return cmdStatus(args[1:], stdout, stderr)
	case "test":
		return cmdTest(args[1:], stdout, stderr)
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
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, ok := loadConfig(*configFile, stderr)
	if !ok {
		return 1
	}
	name := *configFile
	if name == "" {
		name = agent.DefaultConfigName
	}
	files, nrules, err := agent.CheckRules(cfg, *configFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK (interval %s, listen %s, %d rules in %d rule files)\n", name, cfg.Agent.Interval, cfg.Web.Listen, nrules, len(files))
	for _, f := range files {
		fmt.Fprintf(stdout, "  %s: OK\n", f)
	}
	for _, g := range agent.UnmatchedRuleGlobs(cfg, *configFile) {
		fmt.Fprintf(stderr, "warning: rule_files: %q matches no file\n", g)
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
		cfg.Web.ConfigFile = *webConfig
	}
	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(cfg.Agent.Log.Level))
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	if cfg.Agent.Log.Format == "json" {
		h = slog.NewJSONHandler(stderr, hopts)
	}
	logger := slog.New(h)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
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
