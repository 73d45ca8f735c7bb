package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFleetDocRoutes runs every "$ amtool ..." command of docs/fleet.md's
// text blocks and compares its standard output with the lines the
// document shows below it, so that the routes shown are the file's.
func TestFleetDocRoutes(t *testing.T) {
	if _, err := exec.LookPath("amtool"); err != nil {
		t.Fatal("amtool is required (Debian's prometheus-alertmanager): run ./.ci/deps as root")
	}
	root := repoRoot(t)
	f, err := os.Open(filepath.Join(root, "docs", "fleet.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type example struct {
		cmd  string
		want []string
	}
	var examples []example
	// cur is the example whose output the block's next lines are, -1
	// outside one (other text blocks show other output).
	inBlock, cur := false, -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "```text":
			inBlock, cur = true, -1
		case inBlock && line == "```":
			inBlock, cur = false, -1
		case inBlock && strings.HasPrefix(line, "$ amtool "):
			examples = append(examples, example{cmd: strings.TrimPrefix(line, "$ ")})
			cur = len(examples) - 1
		case inBlock && strings.HasPrefix(line, "$ "):
			t.Fatalf("docs/fleet.md shows %q; only amtool commands are run here", line)
		case cur >= 0:
			examples[cur].want = append(examples[cur].want, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(examples) < 5 {
		t.Fatalf("docs/fleet.md shows %d amtool commands; want the route tree and every severity", len(examples))
	}
	for _, ex := range examples {
		t.Run(ex.cmd, func(t *testing.T) {
			args := strings.Fields(ex.cmd)
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Dir = root
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v\n%s", ex.cmd, err, out)
			}
			got := strings.TrimRight(string(out), "\n")
			want := strings.Join(ex.want, "\n")
			if got != want {
				t.Errorf("%s prints\n%s\ndocs/fleet.md shows\n%s", ex.cmd, got, want)
			}
		})
	}
}
