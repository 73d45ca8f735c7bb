package main

// The documentation's examples, run. Every fenced block of README.md and
// docs/*.md names its language, and each is exercised the way an operator
// would use it: YAML configurations go through `check`, rule files through
// Debian's promtool and the agent, shell lines through bash's parser and,
// for tokpulse-agent and promtool, through the real commands against the
// package's layout rebuilt under a temporary root; JSON parses (webhook
// bodies against the schema), PromQL parses, and the signature examples
// of webhook.md verify real requests the agent signed. So the docs cannot
// drift from the code without a test failing.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/text"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// docBlock is one fenced code block of a Markdown file.
type docBlock struct {
	file string // relative to the repository root
	line int    // of the block's first content line
	lang string
	text string
}

func (b docBlock) String() string { return fmt.Sprintf("%s:%d (%s)", b.file, b.line, b.lang) }

// docFiles are the Markdown files whose examples are run.
func docFiles(t *testing.T) []string {
	t.Helper()
	root := testutil.RepoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	out := []string{"README.md"}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		out = append(out, rel)
	}
	return out
}

// parseMarkdown parses a file as GitHub renders it (CommonMark and GFM).
func parseMarkdown(t *testing.T, file string) (ast.Node, []byte) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), file))
	if err != nil {
		t.Fatal(err)
	}
	md := goldmark.New(goldmark.WithExtensions(extension.GFM))
	return md.Parser().Parse(text.NewReader(src)), src
}

// docBlocks returns every fenced code block of the documentation.
func docBlocks(t *testing.T) []docBlock {
	t.Helper()
	var out []docBlock
	for _, file := range docFiles(t) {
		doc, src := parseMarkdown(t, file)
		_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
			fb, ok := n.(*ast.FencedCodeBlock)
			if !entering || !ok {
				return ast.WalkContinue, nil
			}
			var body bytes.Buffer
			lines := fb.Lines()
			line := 0
			for i := range lines.Len() {
				seg := lines.At(i)
				if i == 0 {
					line = bytes.Count(src[:seg.Start], []byte("\n")) + 1
				}
				body.Write(seg.Value(src))
			}
			out = append(out, docBlock{file: file, line: line, lang: string(fb.Language(src)), text: body.String()})
			return ast.WalkSkipChildren, nil
		})
	}
	return out
}

// docLanguages are the languages a block may name, each run below; "text"
// is output and synopses, shown as they are.
var docLanguages = []string{"sh", "yaml", "json", "promql", "python", "go", "js", "ini", "text"}

// TestDocsBlocksNameTheirLanguage: a fence without a language is usually a
// fence too many (docs/metrics.md once had two closing fences, and
// everything after them rendered as code), and an unknown language would
// escape the tests below.
func TestDocsBlocksNameTheirLanguage(t *testing.T) {
	for _, b := range docBlocks(t) {
		if !slices.Contains(docLanguages, b.lang) {
			t.Errorf("%s: code block language %q; name one of %v (text for output)", b, b.lang, docLanguages)
		}
	}
}

// TestDocsLinks: every relative link leads to a file of the repository
// (and to a heading of it, when it names one); nothing points outside the
// repository, where an operator reading the package's docs cannot follow.
func TestDocsLinks(t *testing.T) {
	root := testutil.RepoRoot(t)
	for _, file := range docFiles(t) {
		doc, _ := parseMarkdown(t, file)
		_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
			l, ok := n.(*ast.Link)
			if !entering || !ok {
				return ast.WalkContinue, nil
			}
			dest := string(l.Destination)
			if strings.Contains(dest, "://") || strings.HasPrefix(dest, "mailto:") {
				return ast.WalkContinue, nil
			}
			path, anchor, _ := strings.Cut(dest, "#")
			target := file
			if path != "" {
				target = filepath.Join(filepath.Dir(file), path)
			}
			if rel, err := filepath.Rel(root, filepath.Join(root, target)); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s: link %q leads outside the repository", file, dest)
				return ast.WalkContinue, nil
			}
			if _, err := os.Stat(filepath.Join(root, target)); err != nil {
				t.Errorf("%s: link %q: %v", file, dest, err)
				return ast.WalkContinue, nil
			}
			if anchor != "" && strings.HasSuffix(target, ".md") && !slices.Contains(headingAnchors(t, target), anchor) {
				t.Errorf("%s: link %q: %s has no heading with that anchor (has %v)", file, dest, target, headingAnchors(t, target))
			}
			return ast.WalkContinue, nil
		})
	}
	// No pointer outside the repository in what ships or is read: neither
	// the design documents beside it nor the absolute path of the folder
	// this checkout sits in.
	absRoot, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	outside := regexp.MustCompile(`\.\./shared|` + regexp.QuoteMeta(filepath.Dir(absRoot)+string(filepath.Separator)))
	for _, pattern := range []string{"README.md", "docs/*.md", "packaging/*", "packaging/*/*", "bench/*", "Makefile", "tokpulse-agent.service"} {
		files, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, f := range files {
			if st, err := os.Stat(f); err != nil || st.IsDir() {
				continue
			}
			b, _ := os.ReadFile(f)
			for i, line := range strings.Split(string(b), "\n") {
				if outside.MatchString(line) {
					rel, _ := filepath.Rel(root, f)
					t.Errorf("%s:%d points outside the repository: %s", rel, i+1, strings.TrimSpace(line))
				}
			}
		}
	}
}

// headingAnchors returns the anchors GitHub gives the headings of file.
func headingAnchors(t *testing.T, file string) []string {
	doc, src := parseMarkdown(t, file)
	var out []string
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		h, ok := n.(*ast.Heading)
		if !entering || !ok {
			return ast.WalkContinue, nil
		}
		var b strings.Builder
		for _, r := range strings.ToLower(string(h.Lines().Value(src))) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		out = append(out, b.String())
		return ast.WalkSkipChildren, nil
	})
	return out
}

// installRoot rebuilds the installed package's files under a temporary
// root, from the repository: the shipped agent.yaml and rule pack, an
// empty-but-for-an-example rules.d with a unit test in rules.d/tests, and
// any other file an example names under /etc/tokpulse-agent (a secret, a
// template), so that the examples' absolute paths can be checked as they
// are written.
type installRoot struct {
	dir string
}

func newInstallRoot(t *testing.T) *installRoot {
	t.Helper()
	r := &installRoot{dir: t.TempDir()}
	// t.TempDir's folders are 0700: open them as / is, so that check's
	// warnings about files the service user cannot read judge the files.
	for _, d := range []string{r.dir, filepath.Dir(r.dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	repo := testutil.RepoRoot(t)
	shipped, err := os.ReadFile(filepath.Join(repo, "packaging", "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, r.path("/etc/tokpulse-agent/agent.yaml"), r.mapPaths(t, string(shipped)))
	copyFile(t, filepath.Join(repo, "packaging", "rules", "runbook.yml"), r.path("/usr/share/tokpulse-agent/rules/runbook.yml"))
	// An operator's rule and its unit test, laid out as docs/rules.md says.
	writeFile(t, r.path("/etc/tokpulse-agent/rules.d/app.yml"), `groups:
  - name: app
    rules:
      - alert: AppDown
        expr: tokpulse_process_up{process="node"} == 0
        for: 1m
        labels: {severity: P1}
`)
	writeFile(t, r.path("/etc/tokpulse-agent/rules.d/tests/app_test.yml"), `rule_files: [../app.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - {series: 'tokpulse_process_up{process="node"}', values: '0x3'}
    alert_rule_test:
      - {eval_time: 2m, alertname: AppDown, exp_alerts: [{exp_labels: {severity: P1, process: node}}]}
`)
	return r
}

// path maps an installed path to the temporary root.
func (r *installRoot) path(p string) string { return filepath.Join(r.dir, p) }

// installedPaths are the packages' directories that examples name.
// packageDirs are the package's directories examples name.
var packageDirs = map[string]bool{"tokpulse-agent": true, "rules.d": true, "tests": true, "rules": true}

var installedPaths = regexp.MustCompile(`/(etc|usr/share)/tokpulse-agent\b[^\s"'\]},]*`)

// mapPaths rewrites the package's paths in s to the temporary root,
// creating a placeholder for each file named there that does not exist.
func (r *installRoot) mapPaths(t *testing.T, s string) string {
	t.Helper()
	return installedPaths.ReplaceAllStringFunc(s, func(p string) string {
		mapped := r.path(p)
		if !strings.ContainsAny(p, "*?[") && !strings.HasSuffix(p, "/") && !packageDirs[filepath.Base(p)] {
			if _, err := os.Stat(mapped); errors.Is(err, os.ErrNotExist) {
				if ext := filepath.Ext(p); ext == ".yml" || ext == ".yaml" {
					writeFile(t, mapped, "{}\n")
				} else {
					// A secret, as docs/configuration.md says to keep one:
					// readable by its owner and the agent's group.
					writeFile(t, mapped, "placeholder secret\n")
					if err := os.Chmod(mapped, 0o640); err != nil {
						t.Fatal(err)
					}
					// The group of the user standing in for the service
					// (runCLI's nobody).
					u, err := user.Lookup("nobody")
					if err != nil {
						t.Fatal(err)
					}
					gid, _ := strconv.Atoi(u.Gid)
					if err := os.Chown(mapped, 0, gid); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		return mapped
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// agentKeys are agent.yaml's top-level keys.
var agentKeys = []string{"agent", "web", "host", "logs", "journal", "probes", "checks", "processes", "units", "rule_files", "severities", "notify", "actions"}

// TestDocsYAML checks every YAML example as what it is: a configuration
// (or a part of one) with `check`, a rule file with promtool and the
// agent, a rule unit test with both test runners.
func TestDocsYAML(t *testing.T) {
	promtool := testutil.Require(t, "promtool")
	root := newInstallRoot(t)
	none := filepath.Join(t.TempDir(), "absent.yaml")
	for _, b := range docBlocks(t) {
		if b.lang != "yaml" {
			continue
		}
		t.Run(fmt.Sprintf("%s:%d", b.file, b.line), func(t *testing.T) {
			src := root.mapPaths(t, dedent(b.text))
			var doc any
			if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
				t.Fatalf("%s: not YAML: %v", b, err)
			}
			dir := t.TempDir()
			switch kind, body := classifyYAML(doc, src); kind {
			case "config":
				cfg := filepath.Join(dir, "agent.yaml")
				writeFile(t, cfg, body)
				code, out, errOut := runCLI(t, none, "check", cfg)
				if code != 0 || strings.Contains(errOut, "warning") {
					t.Errorf("%s: check exited %d\n%s%s", b, code, out, errOut)
				}
			case "rules":
				file := filepath.Join(dir, "rules.yml")
				writeFile(t, file, body)
				if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
					t.Errorf("%s: promtool check rules: %v\n%s", b, err, out)
				}
			case "rule tests":
				// The unit test of docs/rules.md, beside the rule it names.
				file := root.path("/etc/tokpulse-agent/rules.d/tests/docs_test.yml")
				writeFile(t, file, body)
				for _, cmd := range [][]string{{promtool, "test", "rules", file}, {testutil.AgentBinary(t), "test", "rules", file}} {
					if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
						t.Errorf("%s: %s: %v\n%s", b, strings.Join(cmd, " "), err, out)
					}
				}
			default:
				t.Errorf("%s: not recognised as a configuration, rule file or rule test; make the example one of them", b)
			}
		})
	}
}

// classifyYAML tells what a YAML example is, and returns it as a whole
// file of that kind: fragments (a logs source's patterns or metrics, a
// list of rules) are wrapped the way the text around them places them.
func classifyYAML(doc any, src string) (string, string) {
	switch d := doc.(type) {
	case map[string]any:
		keys := make([]string, 0, len(d))
		for k := range d {
			keys = append(keys, k)
		}
		switch {
		case slices.Contains(keys, "groups"):
			return "rules", src
		case slices.Contains(keys, "tests"):
			return "rule tests", src
		case len(keys) == 1 && (keys[0] == "patterns" || keys[0] == "metrics"):
			return "config", "logs:\n  - name: docs\n    paths: [/var/log/tokpulse/docs.log]\n" + indent(src, "    ")
		}
		for _, k := range keys {
			if !slices.Contains(agentKeys, k) {
				return "", ""
			}
		}
		return "config", src
	case []any:
		if len(d) > 0 {
			if m, ok := d[0].(map[string]any); ok && (m["alert"] != nil || m["record"] != nil) {
				return "rules", "groups:\n  - name: docs\n    rules:\n" + indent(src, "      ")
			}
		}
	}
	return "", ""
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// dedent removes the indentation common to every line.
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	common := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " "))
		if common < 0 || n < common {
			common = n
		}
	}
	for i, l := range lines {
		if len(l) >= common && common > 0 {
			lines[i] = l[common:]
		}
	}
	return strings.Join(lines, "\n")
}

// shellLines splits a shell block into commands: continuation lines
// joined, comments dropped, and "a && b", "a; b", "a | b" apart.
func shellLines(block string) [][]string {
	var out [][]string
	joined := strings.ReplaceAll(block, "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, part := range regexp.MustCompile(`&&|;|\|\|?`).Split(line, -1) {
			if words := shellWords(part); len(words) > 0 {
				out = append(out, words)
			}
		}
	}
	return out
}

// shellWords splits a simple command into words, honouring single and
// double quotes (the examples use nothing more), and drops a leading sudo
// and redirections.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	var out []string
	for i, w := range words {
		if i == 0 && w == "sudo" || strings.HasPrefix(w, ">") || strings.HasPrefix(w, "2>") {
			continue
		}
		out = append(out, w)
	}
	return out
}

// TestDocsShell parses every shell block with bash, and runs what can run
// here: tokpulse-agent's commands (each must parse; check, test rules,
// config default, version and help must succeed against the package's
// layout), promtool's rule commands, the benchmark programs' builds and
// scripts' syntax. The rest (apt, systemctl, journalctl, curl of a live
// agent) needs a booted host, which packaging/ tests separately.
func TestDocsShell(t *testing.T) {
	promtool := testutil.Require(t, "promtool")
	repo := testutil.RepoRoot(t)
	root := newInstallRoot(t)
	system := root.path(SystemConfigFile)
	t.Setenv("DATABASE_URL", "postgres://localhost/tokpulse") // the shipped checks name it
	for _, b := range docBlocks(t) {
		if b.lang != "sh" {
			continue
		}
		t.Run(fmt.Sprintf("%s:%d", b.file, b.line), func(t *testing.T) {
			if out, err := exec.Command("bash", "-n", "-c", b.text).CombinedOutput(); err != nil {
				t.Errorf("%s: bash -n: %v\n%s", b, err, out)
			}
			cwd := repo
			for _, words := range shellLines(b.text) {
				runDocCommand(t, b, words, &cwd, promtool, root, system)
			}
		})
	}
}

// runDocCommand runs or checks one command of a shell example.
// cwd is the directory the block's earlier "cd" left, from the
// repository's root.
func runDocCommand(t *testing.T, b docBlock, words []string, cwd *string, promtool string, root *installRoot, system string) {
	t.Helper()
	line := strings.Join(words, " ")
	args := expand(t, root, words[1:])
	switch {
	case words[0] == "tokpulse-agent":
		c := &cli{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, systemConfig: system}
		cmd, _, err := c.parse(args)
		var ue *usageError
		if errors.As(err, &ue) || err != nil && !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: %q is not a valid command line: %v", b, line, err)
			return
		}
		switch name := cmd.name; name {
		case "check", "test rules", "config default", "version":
			code, out, errOut := runCLI(t, system, args...)
			if code != 0 || strings.Contains(errOut, "warning") {
				t.Errorf("%s: %q exited %d\n%s%s", b, line, code, out, errOut)
			}
		}
	case words[0] == "promtool" && len(words) > 2 && words[2] == "rules":
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("%s: %q: %v\n%s", b, line, err, out)
		}
	case words[0] == "cd" && len(words) == 2:
		*cwd = filepath.Join(*cwd, words[1])
		if _, err := os.Stat(*cwd); err != nil {
			t.Errorf("%s: %q: %v", b, line, err)
		}
	case words[0] == "go" && len(words) > 1 && words[1] == "run":
		// "cd bench/nxadmtail && go run -mod=mod . -seconds 20": the
		// program builds as the command runs it (not for 20 s here).
		// "go run ./bench/startup -bin ...": the package named, else ".".
		build := exec.Command("go", "build", "-o", os.DevNull)
		pkg := "."
		for _, w := range words[2:] {
			if strings.HasPrefix(w, "-mod=") {
				build.Args = append(build.Args, w)
			}
			if strings.HasPrefix(w, "./") && pkg == "." {
				pkg = w
			} else if !strings.HasPrefix(w, "-") {
				break
			}
		}
		build.Args = append(build.Args, pkg)
		build.Dir = *cwd
		if out, err := build.CombinedOutput(); err != nil {
			t.Errorf("%s: %q does not build in %s: %v\n%s", b, line, *cwd, err, out)
		}
	case strings.HasPrefix(words[0], "bench/"):
		if out, err := exec.Command("bash", "-n", filepath.Join(*cwd, words[0])).CombinedOutput(); err != nil {
			t.Errorf("%s: %q: %v\n%s", b, line, err, out)
		}
	case words[0] == "go" && len(words) > 1 && words[1] == "test":
		for _, w := range words[2:] {
			if strings.HasPrefix(w, "./") {
				if _, err := os.Stat(filepath.Join(*cwd, strings.TrimSuffix(strings.TrimSuffix(w, "..."), "/"))); err != nil {
					t.Errorf("%s: %q: no package %s", b, line, w)
				}
			}
		}
	}
}

// expand maps the package's paths to the temporary root and expands globs
// as the shell would (a glob matching nothing stays as it is).
func expand(t *testing.T, root *installRoot, words []string) []string {
	var out []string
	for _, w := range words {
		w = root.mapPaths(t, w)
		if strings.ContainsAny(w, "*?[") {
			if m, _ := filepath.Glob(w); len(m) > 0 {
				out = append(out, m...)
				continue
			}
		}
		out = append(out, w)
	}
	return out
}

// TestDocsJSON: every JSON example parses; webhook bodies validate against
// docs/webhook.schema.json.
func TestDocsJSON(t *testing.T) {
	schema := testutil.WebhookSchema(t)
	for _, b := range docBlocks(t) {
		if b.lang != "json" {
			continue
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(b.text), &v); err != nil {
			t.Errorf("%s: not JSON: %v", b, err)
			continue
		}
		if v["events"] != nil && v["version"] != nil {
			inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(b.text))
			if err := schema.Validate(inst); err != nil {
				t.Errorf("%s: does not match docs/webhook.schema.json: %v", b, err)
			}
		}
	}
}

// TestDocsPromQL: every PromQL example parses, one expression per line.
func TestDocsPromQL(t *testing.T) {
	for _, b := range docBlocks(t) {
		if b.lang != "promql" {
			continue
		}
		for i, line := range strings.Split(strings.TrimSpace(b.text), "\n") {
			if _, err := parser.NewParser(parser.Options{}).ParseExpr(line); err != nil {
				t.Errorf("%s line %d: %v", b, i+1, err)
			}
		}
	}
}
