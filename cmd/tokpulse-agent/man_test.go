package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
	"github.com/tokpulse/tokpulse-agent/internal/testutil/golden"
)

// manBlocks are the generated parts of the man page, each between a
// `.\" BEGIN GENERATED NAME` and a `.\" END GENERATED NAME` line.
var manBlocks = []string{"SYNOPSIS", "COMMANDS"}

// roffText escapes prose for roff: backslashes, option dashes, and a
// control character at the start of a line.
func roffText(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "--", `\-\-`)
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			l = `\&` + l
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// roffArgs writes a command's positional arguments, "[FILE...]" or
// "FILE...", with the name in italics.
func roffArgs(args string) string {
	if args == "" {
		return ""
	}
	opt := strings.HasPrefix(args, "[")
	name := strings.Trim(args, "[]")
	dots := strings.HasSuffix(name, "...")
	name = strings.TrimSuffix(name, "...")
	tail := ""
	if dots {
		tail = "..."
	}
	if opt {
		return ".RI [ " + name + " " + tail + "]\n"
	}
	if tail == "" {
		return ".I " + name + "\n"
	}
	return ".IR " + name + " " + tail + "\n"
}

// manGenerated is a generated part of the man page, made from the table of
// commands: the same words as each command's -h.
func manGenerated(block string) string {
	var b strings.Builder
	if block == "COMMANDS" {
		return manCommands()
	}
	b.WriteString(".SH SYNOPSIS\n")
	for i, cmd := range commands() {
		if i > 0 {
			b.WriteString(".br\n")
		}
		b.WriteString(".B tokpulse-agent " + cmd.name + "\n")
		for _, f := range cmd.flags() {
			if f.value == "" {
				b.WriteString(`.RB [ \-\-` + f.name + " ]\n")
				continue
			}
			b.WriteString(`.RB [ \-\-` + f.name + "\n.IR " + f.value + " ]\n")
		}
		b.WriteString(roffArgs(cmd.args))
	}
	return b.String()
}

func manCommands() string {
	var b strings.Builder
	b.WriteString(".SH COMMANDS\n")
	for _, cmd := range commands() {
		b.WriteString(".TP\n.B " + cmd.name + "\n")
		for i, para := range strings.Split(cmd.help, "\n\n") {
			if i > 0 {
				b.WriteString(".IP\n")
			}
			b.WriteString(roffText(wrap(para, 78, "")) + "\n")
		}
		if fl := cmd.flags(); len(fl) > 0 {
			b.WriteString(".RS\n")
			for _, f := range fl {
				if f.value == "" {
					b.WriteString(`.B \-\-` + f.name + "\n")
				} else {
					b.WriteString(`.BI \-\-` + f.name + ` " ` + f.value + "\"\n")
				}
				b.WriteString(".RS\n" + roffText(wrap(f.usage, 78, "")) + "\n.RE\n")
			}
			b.WriteString(".RE\n")
		}
	}
	return b.String()
}

// TestManPage keeps the man page true: its SYNOPSIS and COMMANDS are the
// command line's own help (rewritten with -update), the rest names the
// rules directory and test convention the docs use, and man renders it
// without a warning.
func TestManPage(t *testing.T) {
	path := filepath.Join(testutil.RepoRoot(t), "packaging", "tokpulse-agent.8")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	want := page
	for _, block := range manBlocks {
		begin, end := `.\" BEGIN GENERATED `+block+"\n", `.\" END GENERATED `+block+"\n"
		i, j := strings.Index(want, begin), strings.Index(want, end)
		if i < 0 || j < i {
			t.Fatalf("%s lacks the markers %q and %q", path, begin, end)
		}
		want = want[:i+len(begin)] + manGenerated(block) + want[j:]
	}
	if golden.Update() {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		page = want
	} else if page != want {
		t.Errorf("the SYNOPSIS and COMMANDS of %s differ from the command line's help; run go test ./cmd/tokpulse-agent -run TestManPage -update", path)
	}
	for _, w := range []string{
		"/etc/tokpulse-agent/rules.d/", "/etc/tokpulse-agent/rules.d/tests/", "/usr/share/tokpulse-agent/rules/",
		`\fBlogs:\fR`, `\fBjournal:\fR`, `\fBprobes:\fR`, `\fBchecks:\fR`, `\fBrule_files:\fR`, `\fBnotify:\fR`,
		"/usr/share/doc/tokpulse-agent/",
	} {
		if !strings.Contains(page, w) {
			t.Errorf("%s does not mention %s", path, w)
		}
	}
	if regexp.MustCompile(`(?i)later versions|will (also )?(tail|poll)`).MatchString(page) {
		t.Errorf("%s promises as future what the agent does today", path)
	}

	man := testutil.Require(t, "man")
	cmd := exec.Command(man, "--warnings", "-l", path)
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("man -l: %v\n%s", err, out)
	}
	// man justifies lines with extra spaces: compare with single ones.
	rendered := strings.Join(strings.Fields(string(out)), " ")
	for _, w := range []string{"tokpulse-agent check [--as-user NAME] [--config FILE] [FILE...]", "tokpulse-agent test rules [--debug] [--diff]", "--web.config.file FILE"} {
		if !strings.Contains(rendered, w) {
			t.Errorf("the rendered page lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(string(out), "warning") {
		t.Errorf("man --warnings:\n%s", out)
	}
}
