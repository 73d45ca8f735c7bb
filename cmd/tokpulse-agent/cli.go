package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/tokpulse/tokpulse-agent/agent"
)

// SystemConfigFile is where the packages install the configuration. The
// subcommands that read a configuration use it when no --config is given
// and it exists, as Alertmanager and Monit read theirs without being told,
// so that `tokpulse-agent check` on an installed host checks what the
// service runs rather than the embedded default.
const SystemConfigFile = "/etc/tokpulse-agent/agent.yaml"

// cli is one invocation of the command line: where it writes, and which
// file stands in for --config when none is given.
type cli struct {
	stdout, stderr io.Writer
	// systemConfig is SystemConfigFile, except in tests.
	systemConfig string
	// service is whom check judges the configuration's files for:
	// agent.PackagedService(), except in tests.
	service agent.ServiceAccount
	// policyDirs are where check looks for the agent's polkit policy:
	// actions.DefaultPolicyDirs(), except in tests (none: no policy).
	policyDirs []string
}

// command is one subcommand: how it is written, what it does, the flags it
// takes and the code that runs it. The overview (`tokpulse-agent help`),
// each command's -h and the man page are all made from this table, so that
// they cannot disagree.
type command struct {
	// name is the words that select the command: "check", "notify test".
	name string
	// args describes the positional arguments in the synopsis ("" for none).
	args string
	// minArgs and maxArgs bound the positional arguments; maxArgs -1
	// means any number.
	minArgs, maxArgs int
	// summary is one line for the overview.
	summary string
	// help is what -h prints below the synopsis, and the man page's
	// paragraph: whole sentences, one paragraph per blank line.
	help string
	// setup declares the command's flags on fs and returns the function
	// that runs it with the positional arguments once fs is parsed.
	setup func(c *cli, fs *flag.FlagSet) func(args []string) int
	// raw, set instead of setup, runs a command that parses its own
	// command line: the promtool stand-ins (`test rules`, `check rules`),
	// whose flags, help and usage errors are promtool's (kingpin), so that
	// promtool's invocations work unchanged. It gets everything after the
	// first word, flags before the second one included.
	raw func(c *cli, args []string) int
	// rawFlags document a raw command's flags for its help and the man
	// page (its own parser has them).
	rawFlags []flagDoc
}

// commands lists every subcommand, in the order the overview shows them.
func commands() []*command {
	return []*command{
		runCommand(), checkCommand(), checkRulesCommand(), reloadCommand(), statusCommand(), testRulesCommand(),
		notifyTestCommand(), configDefaultCommand(), versionCommand(),
	}
}

// configFlag declares --config on a subcommand's flag set.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "read the configuration from `FILE` (default: "+SystemConfigFile+" if it exists, else the embedded default)")
}

// configFile resolves --config: the flag's value when given, else the
// system configuration when it exists, else "" for the embedded default.
func (c *cli) configFile(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if _, err := os.Stat(c.systemConfig); err == nil {
		return c.systemConfig
	}
	return ""
}

// usageError is a command line that cannot be run as written; cmd is the
// command it names, nil when none.
type usageError struct {
	cmd *command
	msg string
}

func (e *usageError) Error() string { return e.msg }

// main runs the command line args and returns the exit status: that of
// the command, 2 for a usage error, 0 for help.
func (c *cli) main(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, overview())
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" {
			// "help check" is "check -h".
			return c.main(append(args[1:], "-h"))
		}
		fmt.Fprint(c.stdout, overview())
		return 0
	case "--version", "-version", "-v":
		args = append([]string{"version"}, args[1:]...)
	}
	cmd, run, err := c.parse(args)
	var ue *usageError
	switch {
	case errors.Is(err, flag.ErrHelp) && cmd != nil:
		fmt.Fprint(c.stdout, cmd.usage())
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(c.stdout, groupOverview(args[0]))
		return 0
	case errors.As(err, &ue) && ue.cmd != nil:
		fmt.Fprint(c.stderr, ue.cmd.usageError(ue.msg))
		return 2
	case err != nil:
		fmt.Fprintf(c.stderr, "tokpulse-agent: %v\n\n%s", err, groupOverview(args[0]))
		return 2
	}
	return run()
}

// rawCommand returns the raw command args name. "test" is promtool's
// group entirely ("test" alone is promtool's usage error); "check rules"
// is chosen when "rules" is among the words after "check" that are not
// flags, since promtool allows the group's flags before it ("check
// --enable-feature=x rules f.yml").
func rawCommand(args []string) *command {
	if len(args) == 0 {
		return nil
	}
	for _, cmd := range commands() {
		w := strings.Fields(cmd.name)
		if cmd.raw == nil || args[0] != w[0] {
			continue
		}
		if w[0] == "test" {
			return cmd
		}
		for _, a := range args[1:] {
			if a == w[1] {
				return cmd
			}
			if !strings.HasPrefix(a, "-") {
				break
			}
		}
	}
	return nil
}

// lookup finds the command that args start with, and the arguments after
// its name. It returns nil when none matches.
func lookup(args []string) (*command, []string) {
	var best *command
	bestLen := 0
	for _, cmd := range commands() {
		words := strings.Fields(cmd.name)
		if len(words) <= len(args) && len(words) > bestLen && slices.Equal(words, args[:len(words)]) {
			best, bestLen = cmd, len(words)
		}
	}
	if best == nil {
		return nil, nil
	}
	return best, args[bestLen:]
}

// parse finds the command args name, parses its flags (anywhere among its
// arguments, as promtool and kingpin do; "--" ends them) and counts its
// positional arguments. It returns the function that runs the command, or
// flag.ErrHelp for -h/--help, or a *usageError.
func (c *cli) parse(args []string) (*command, func() int, error) {
	if cmd := rawCommand(args); cmd != nil {
		return cmd, func() int { return cmd.raw(c, args[1:]) }, nil
	}
	cmd, rest := lookup(args)
	if cmd == nil {
		if len(args) > 1 && isHelp(args[1]) && isGroup(args[0]) {
			return nil, nil, flag.ErrHelp // "notify -h": the notify commands
		}
		if isGroup(args[0]) && (len(args) == 1 || strings.HasPrefix(args[1], "-")) {
			return nil, nil, fmt.Errorf("%q needs a subcommand", args[0])
		}
		return nil, nil, fmt.Errorf("unknown command %q", strings.Join(commandWords(args), " "))
	}
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors itself, with the usage
	fs.Usage = func() {}
	runner := cmd.setup(c, fs)
	pos, err := parseInterspersed(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		return cmd, nil, err
	}
	if err != nil {
		return cmd, nil, &usageError{cmd, strings.Replace(err.Error(), "flag provided but not defined: ", "unknown flag ", 1)}
	}
	switch {
	case len(pos) < cmd.minArgs:
		return cmd, nil, &usageError{cmd, "missing " + cmd.args}
	case cmd.maxArgs >= 0 && len(pos) > cmd.maxArgs:
		extra := pos[cmd.maxArgs:]
		return cmd, nil, &usageError{cmd, fmt.Sprintf("unexpected argument %q", extra[0])}
	}
	return cmd, func() int { return runner(pos) }, nil
}

// commandWords returns the leading words of args that are not flags, for
// naming an unknown command.
func commandWords(args []string) []string {
	n := 0
	for n < len(args) && n < 2 && !strings.HasPrefix(args[n], "-") {
		n++
	}
	if n == 0 {
		return args[:1]
	}
	return args[:n]
}

func isHelp(s string) bool {
	return s == "-h" || s == "-help" || s == "--help"
}

// parseInterspersed parses fs from args, allowing flags after positional
// arguments, and returns the positional arguments in order.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
			// Everything after "--" is an argument, even "-h".
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// synopsis is the command's usage line, flags and arguments included.
func (cmd *command) synopsis() string {
	var b strings.Builder
	b.WriteString("tokpulse-agent " + cmd.name)
	for _, f := range cmd.flags() {
		b.WriteString(" [" + f.syntax() + "]")
	}
	if cmd.args != "" {
		b.WriteString(" " + cmd.args)
	}
	return b.String()
}

// flagDoc describes one flag of a command, for the help and the man page.
type flagDoc struct {
	name, value, usage string
}

// syntax is how the flag is written: "--config FILE", "--json".
func (f flagDoc) syntax() string {
	if f.value == "" {
		return "--" + f.name
	}
	return "--" + f.name + " " + f.value
}

// flags returns the command's flags, sorted by name; a raw command's are
// in its synopsis.
func (cmd *command) flags() []flagDoc {
	if cmd.setup == nil {
		return cmd.rawFlags
	}
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	cmd.setup(&cli{stdout: io.Discard, stderr: io.Discard}, fs)
	var out []flagDoc
	fs.VisitAll(func(f *flag.Flag) {
		value, usage := flag.UnquoteUsage(f)
		if value == "value" {
			value = "" // a boolean flag takes none
		}
		out = append(out, flagDoc{name: f.Name, value: value, usage: usage})
	})
	return out
}

// usage is what `tokpulse-agent CMD -h` prints.
func (cmd *command) usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n\n%s\n", cmd.synopsis(), wrap(cmd.help, 78, ""))
	if fl := cmd.flags(); len(fl) > 0 {
		b.WriteString("\nFlags:\n")
		for _, f := range fl {
			fmt.Fprintf(&b, "  %s\n%s\n", f.syntax(), wrap(f.usage, 78, "        "))
		}
	}
	return b.String()
}

// usageError is what a usage error prints: the mistake, the synopsis and
// where to read more.
func (cmd *command) usageError(msg string) string {
	return fmt.Sprintf("tokpulse-agent %s: %s\nUsage: %s\nRun \"tokpulse-agent %s -h\" for help.\n", cmd.name, msg, cmd.synopsis(), cmd.name)
}

// overview is what `tokpulse-agent help` prints: every command in one line.
func overview() string { return groupOverview("") }

// isGroup reports whether word is the first of several words of a command
// ("notify" of "notify test").
func isGroup(word string) bool {
	for _, cmd := range commands() {
		if w := strings.Fields(cmd.name); len(w) > 1 && w[0] == word {
			return true
		}
	}
	return false
}

// groupOverview lists the commands whose first word is word ("notify"),
// or every command when word is "" or no command starts with it.
func groupOverview(word string) string {
	if !isGroup(word) {
		word = ""
	}
	var b strings.Builder
	b.WriteString("tokpulse-agent: the TokPulse host monitoring agent.\n\nUsage:\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 3, ' ', 0)
	for _, cmd := range commands() {
		if word != "" && strings.Fields(cmd.name)[0] != word {
			continue
		}
		fmt.Fprintf(tw, "  tokpulse-agent %s %s\t%s\n", cmd.name, cmd.args, cmd.summary)
	}
	_ = tw.Flush()
	b.WriteString("\n\"tokpulse-agent COMMAND -h\" shows a command's flags and what it does.\n")
	return b.String()
}

// wrap fills text to width columns, each line starting with indent; blank
// lines separate paragraphs.
func wrap(text string, width int, indent string) string {
	var out []string
	for i, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			out = append(out, "")
		}
		line := indent
		for _, w := range strings.Fields(para) {
			if len(line) > len(indent) && len(line)+1+len(w) > width {
				out = append(out, line)
				line = indent
			}
			if len(line) > len(indent) {
				line += " "
			}
			line += w
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
