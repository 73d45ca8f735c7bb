package promtest

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/tokpulse/tokpulse-agent/internal/safefile"
	"github.com/tokpulse/tokpulse-agent/rules"
)

// CheckOptions configure CheckRules; the fields are promtool's flags.
type CheckOptions struct {
	// Stdin is read when no file is given.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Lint lists the lint checks, comma-separated: all, duplicate-rules
	// (the default) or none.
	Lint string
	// LintFatal makes lint findings exit with ExitLint.
	LintFatal bool
	// IgnoreUnknownFields accepts keys rulefmt does not know.
	IgnoreUnknownFields bool
}

// errLint marks a lint finding, which fails only under LintFatal.
var errLint = errors.New("lint error")

// CheckRules checks rule files as the agent loads them (Prometheus' own
// rulefmt plus the agent's severity requirement) and reports as `promtool
// check rules`: "Checking FILE" and "  SUCCESS: N rules found" on Stdout,
// "  FAILED:" and the problems, one per line, on Stderr. It returns 1 when
// a file has errors, 3 when it has only lint findings and LintFatal is
// set, else 0.
func CheckRules(opts CheckOptions, files ...string) int {
	duplicates := false
	for _, o := range strings.Split(opts.Lint, ",") {
		switch o {
		case "all", "duplicate-rules":
			duplicates = true
		case "none", "":
		default:
			fmt.Fprintf(opts.Stdout, "WARNING: unknown lint option: %q\n", o)
		}
	}
	failed, hasErrors := false, false
	check := func(name string, groups []*rules.Group, errs []error) {
		if len(errs) > 0 {
			failed, hasErrors = true, true
			fmt.Fprintln(opts.Stderr, "  FAILED:")
			for _, e := range errs {
				fmt.Fprintln(opts.Stderr, e.Error())
			}
			return
		}
		n := 0
		for _, g := range groups {
			n += len(g.Rules)
		}
		if duplicates {
			if dup := duplicateRules(groups); dup != "" {
				failed = true
				fmt.Fprintln(opts.Stderr, "  FAILED:")
				fmt.Fprintln(opts.Stderr, fmt.Errorf("%w %s", errLint, dup))
				fmt.Fprintln(opts.Stdout)
				return
			}
		}
		fmt.Fprintf(opts.Stdout, "  SUCCESS: %d rules found\n", n)
		fmt.Fprintln(opts.Stdout)
	}
	load := rules.LoadOptions{IgnoreUnknownFields: opts.IgnoreUnknownFields}
	if len(files) == 0 {
		fmt.Fprintln(opts.Stdout, "Checking standard input")
		data, err := io.ReadAll(opts.Stdin)
		if err != nil {
			fmt.Fprintln(opts.Stderr, "  FAILED:", err)
			return ExitFailure
		}
		groups, errs := rules.ParseRules("standard input", data, load, nil)
		check("standard input", groups, errs)
	}
	for _, f := range files {
		fmt.Fprintln(opts.Stdout, "Checking", f)
		data, err := safefile.ReadFile(f, safefile.MaxRuleFile, "rule file")
		var (
			groups []*rules.Group
			errs   []error
		)
		if err != nil {
			errs = []error{err}
		} else {
			groups, errs = rules.ParseRules(f, data, load, nil)
			for i, e := range errs {
				// promtool names the file before each problem.
				errs[i] = fmt.Errorf("%s: %w", f, e)
			}
		}
		check(f, groups, errs)
	}
	switch {
	case failed && hasErrors:
		return ExitFailure
	case failed && opts.LintFatal:
		return ExitLint
	}
	return ExitSuccess
}

// duplicateRules finds rules with the same name and labels (group labels
// included), which record or alert on the same series; it returns
// promtool's report of them, or "".
func duplicateRules(groups []*rules.Group) string {
	type key struct {
		metric string
		lset   labels.Labels
	}
	var all []key
	for _, g := range groups {
		for _, r := range g.Rules {
			all = append(all, key{r.Name(), r.Labels})
		}
	}
	cmp := func(a, b key) int {
		if c := strings.Compare(a.metric, b.metric); c != 0 {
			return c
		}
		return labels.Compare(a.lset, b.lset)
	}
	slices.SortFunc(all, cmp)
	var dups []key
	for i := 1; i < len(all); i++ {
		if cmp(all[i-1], all[i]) == 0 && (len(dups) == 0 || cmp(dups[len(dups)-1], all[i]) != 0) {
			dups = append(dups, all[i])
		}
	}
	if len(dups) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d duplicate rule(s) found.\n", len(dups))
	for _, d := range dups {
		fmt.Fprintf(&b, "Metric: %s\nLabel(s):\n", d.metric)
		d.lset.Range(func(l labels.Label) { fmt.Fprintf(&b, "\t%s: %s\n", l.Name, l.Value) })
	}
	b.WriteString("Might cause inconsistency while recording expressions")
	return b.String()
}
