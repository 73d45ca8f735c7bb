package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/alecthomas/kingpin/v2"

	"github.com/tokpulse/tokpulse-agent/rules/promtest"
)

// The subcommands that stand in for promtool's: `test rules` and `check
// rules`. They parse their command line with kingpin, as promtool does,
// so that promtool's invocations work unchanged: flags before, between or
// after the files, --flag=value or --flag value, --no-flag, repeated
// --run, and promtool's exit codes and usage errors.

// promtoolFeatures are promtool's --enable-feature values and what the
// agent makes of each: "" for a feature its engine always has (a no-op,
// as in promtool), else why it refuses it. A test that passed only with
// a feature the daemon does not enable would prove nothing about the host.
var promtoolFeatures = map[string]string{
	"promql-duration-expr":            "",
	"promql-extended-range-selectors": "",
	"promql-experimental-functions":   "the agent's rule engine does not enable experimental PromQL functions, so its daemon would refuse these rules",
	"promql-unquoted-utf8-names":      "the agent's rule engine parses PromQL without unquoted UTF-8 names, so its daemon would refuse these rules",
	"promql-delayed-name-removal":     "the agent's rule engine removes metric names as Prometheus does by default, so its daemon would evaluate these rules differently",
	"promql-binop-fill-modifiers":     "the agent's rule engine does not enable fill modifiers, so its daemon would refuse these rules",
}

// newPromtoolApp returns a kingpin application that reports to stdout and
// stderr and records the exit status instead of exiting.
func newPromtoolApp(name, help string, stdout, stderr io.Writer, status *int) *kingpin.Application {
	app := kingpin.New("tokpulse-agent "+name, help)
	app.HelpFlag.Short('h') // as promtool
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	app.Terminate(func(code int) {
		if *status < 0 {
			*status = code
		}
	})
	return app
}

// parsePromtoolArgs parses args and reports whether the command is done
// (help shown, or a usage error), with its exit code.
func parsePromtoolArgs(app *kingpin.Application, args []string, status *int) (int, bool) {
	_, err := app.Parse(args)
	switch {
	case errors.Is(err, kingpin.ErrCommandNotSpecified):
		// kingpin printed the usage; promtool's words for it.
		app.Errorf("must select a subcommand of %q, try --help", strings.TrimPrefix(app.Name, "tokpulse-agent "))
		return promtest.ExitFailure, true
	case *status == 0: // --help
		return 0, true
	case err != nil:
		app.Errorf("%s, try --help", err)
		return promtest.ExitFailure, true
	case *status > 0:
		return *status, true
	}
	return 0, false
}

// checkFeatures refuses --enable-feature values the daemon lacks.
func checkFeatures(features []string, stdout, stderr io.Writer) bool {
	ok := true
	for _, f := range features {
		for _, o := range strings.Split(f, ",") {
			if o == "" {
				continue
			}
			why, known := promtoolFeatures[o]
			switch {
			case !known:
				// promtool warns, on stdout, and goes on.
				fmt.Fprintf(stdout, "  WARNING: Unknown feature passed to --enable-feature: %s\n", o)
			case why != "":
				fmt.Fprintf(stderr, "--enable-feature=%s: %s\n", o, why)
				ok = false
			}
		}
	}
	return ok
}

// cmdTest is `tokpulse-agent test rules`: promtool's `test rules`.
func cmdTest(args []string, stdout, stderr io.Writer) int {
	status := -1
	app := newPromtoolApp("test", "Unit testing, as promtool's test command.", stdout, stderr, &status)
	junitFile := app.Flag("junit", "File path to store JUnit XML test results.").String()
	features := app.Flag("enable-feature", "promtool's feature flags; those the agent's engine always has are accepted, the others refused.").Strings()
	rulesCmd := app.Command("rules", "Unit tests for rules, in promtool's test file format, run by the agent's own rule engine.")
	run := rulesCmd.Flag("run", "If set, will only run test groups whose names match the regular expression. Can be specified multiple times.").Strings()
	files := rulesCmd.Arg("test-rule-file", "The unit test file.").Required().ExistingFiles()
	debug := rulesCmd.Flag("debug", "Enable unit test debugging.").Default("false").Bool()
	diff := rulesCmd.Flag("diff", "[Experimental] Print colored differential output between expected & received output.").Default("false").Bool()
	ignore := rulesCmd.Flag("ignore-unknown-fields", "Ignore unknown fields in the rule files. This is useful when you want to extend rule files with custom metadata. Ensure that those fields are removed before loading them into Prometheus or tokpulse-agent, which refuse them.").Default("false").Bool()
	if code, done := parsePromtoolArgs(app, args, &status); done {
		return code
	}
	if !checkFeatures(*features, stdout, stderr) {
		return promtest.ExitFailure
	}
	opts := promtest.Options{
		Stdout: stdout, Stderr: stderr,
		Run: *run, Diff: *diff, Debug: *debug, IgnoreUnknownFields: *ignore,
	}
	if *junitFile != "" {
		// Opened before the tests run, as promtool does: a CI job that
		// collects the report finds one even when a test file is broken.
		f, err := os.OpenFile(*junitFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			app.Errorf("%s, try --help", err)
			return promtest.ExitFailure
		}
		defer f.Close()
		opts.JUnit = f
	}
	return promtest.TestRules(opts, *files...)
}

// cmdCheckRules is `tokpulse-agent check rules`: promtool's `check rules`.
// args follow "check".
func cmdCheckRules(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	status := -1
	app := newPromtoolApp("check", "Check the resources for validity, as promtool's check command.", stdout, stderr, &status)
	features := app.Flag("enable-feature", "promtool's feature flags; those the agent's engine always has are accepted, the others refused.").Strings()
	rulesCmd := app.Command("rules", "Check if the rule files are valid or not, as the agent loads them.")
	files := rulesCmd.Arg("rule-files", "The rule files to check, default is read from standard input.").ExistingFiles()
	lint := rulesCmd.Flag("lint", "Linting checks to apply. Available options are: all, duplicate-rules, none. Use --lint=none to disable linting").Default("duplicate-rules").String()
	lintFatal := rulesCmd.Flag("lint-fatal", "Make lint errors exit with exit code 3.").Default("false").Bool()
	ignore := rulesCmd.Flag("ignore-unknown-fields", "Ignore unknown fields in the rule files. This is useful when you want to extend rule files with custom metadata. Ensure that those fields are removed before loading them into Prometheus or tokpulse-agent, which refuse them.").Default("false").Bool()
	if code, done := parsePromtoolArgs(app, args, &status); done {
		return code
	}
	if !checkFeatures(*features, stdout, stderr) {
		return promtest.ExitFailure
	}
	return promtest.CheckRules(promtest.CheckOptions{
		Stdin: stdin, Stdout: stdout, Stderr: stderr,
		Lint: *lint, LintFatal: *lintFatal, IgnoreUnknownFields: *ignore,
	}, *files...)
}
