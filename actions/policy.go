package actions

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// PolicyFile is the polkit rule the packages ship under
// /usr/share/polkit-1/rules.d: it lets the user tokpulse-agent restart
// exactly the units its list names, and nothing else.
const PolicyFile = "50-tokpulse-agent.rules"

// DefaultPolicyDirs are where polkit reads rules, the operator's first.
func DefaultPolicyDirs() []string {
	return []string{"/etc/polkit-1/rules.d", "/usr/share/polkit-1/rules.d"}
}

// unitsLine is the list of units in a policy file:
//
//	var units = ["tokpulse.service", "postgresql.service"];
var unitsLine = regexp.MustCompile(`(?m)^\s*var\s+units\s*=\s*(\[[^\]]*\])\s*;`)

// Policy is what the installed polkit rules for the agent allow, as far
// as the agent can read them.
type Policy struct {
	// Units the agent's user may restart: the union of the unit lists of
	// every readable *tokpulse-agent*.rules file.
	Units []string
	// Files read.
	Files []string
	// Unreadable lists the directories or files that could not be read
	// (polkit's /etc/polkit-1/rules.d is often root's alone), so that
	// Units may be incomplete.
	Unreadable []string
}

// Known reports whether the policy is known well enough to refuse a unit
// it does not name: a policy file was read and nothing was unreadable.
func (p Policy) Known() bool { return len(p.Files) > 0 && len(p.Unreadable) == 0 }

// ReadPolicy reads the agent's polkit rules in dirs: every file whose name
// contains "tokpulse-agent" and ends in .rules, for its units list.
func ReadPolicy(dirs []string) Policy {
	var p Policy
	seen := map[string]bool{}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			p.Unreadable = append(p.Unreadable, dir)
			continue
		}
		for _, e := range entries {
			name := e.Name()
			if !strings.Contains(name, "tokpulse-agent") || !strings.HasSuffix(name, ".rules") {
				continue
			}
			path := filepath.Join(dir, name)
			data, err := os.ReadFile(path)
			if err != nil {
				p.Unreadable = append(p.Unreadable, path)
				continue
			}
			p.Files = append(p.Files, path)
			units, err := ParsePolicyUnits(data)
			if err != nil {
				p.Unreadable = append(p.Unreadable, path+" ("+err.Error()+")")
				continue
			}
			for _, u := range units {
				if !seen[u] {
					seen[u] = true
					p.Units = append(p.Units, u)
				}
			}
		}
	}
	sort.Strings(p.Units)
	return p
}

// ParsePolicyUnits returns the units of the "var units = [...];" lines of
// a polkit rule file.
func ParsePolicyUnits(data []byte) ([]string, error) {
	var out []string
	ms := unitsLine.FindAllSubmatch(data, -1)
	if len(ms) == 0 {
		return nil, errors.New(`no line "var units = [...];"`)
	}
	for _, m := range ms {
		var units []string
		if err := json.Unmarshal(m[1], &units); err != nil {
			return nil, fmt.Errorf("the units list is not a list of double-quoted names: %w", err)
		}
		out = append(out, units...)
	}
	return out, nil
}

// Finding is one result of Check: a problem (an error of the
// configuration), a warning, or a note; Line locates the key when known.
type Finding struct {
	Key  string
	Line int
	Msg  string
}

// Check judges actions against what the agent can know beyond their own
// syntax, for `tokpulse-agent check`: a restart_unit the installed polkit
// policy does not allow is a problem when the whole policy could be read,
// a warning when part of it could not; an alertname in match (or a
// match_re on it) that no loaded rule has is a warning. Notes say what
// could not be judged. src is the configuration file, for lines.
func Check(list []Config, alertNames []string, pol Policy, src []byte) (problems, warnings, notes []Finding) {
	lines := actionLines(src)
	at := func(i int, key string) Finding {
		k := fmt.Sprintf("actions[%d].%s", i, key)
		return Finding{Key: k, Line: lines[k]}
	}
	restarts := false
	for i, c := range list {
		if name := c.Match["alertname"]; name != "" && !slices.Contains(alertNames, name) {
			f := at(i, "match")
			f.Msg = fmt.Sprintf("no loaded rule has an alert named %q; the action %s would never run (check rule_files and the name)", name, c.Name)
			warnings = append(warnings, f)
		}
		if re := c.MatchRE["alertname"]; !re.IsZero() {
			anchored := regexp.MustCompile("^(?:" + re.String() + ")$")
			if !slices.ContainsFunc(alertNames, anchored.MatchString) {
				f := at(i, "match_re")
				f.Msg = fmt.Sprintf("no loaded rule has an alert name matching %q; the action %s would never run", re.String(), c.Name)
				warnings = append(warnings, f)
			}
		}
		if c.RestartUnit == "" {
			continue
		}
		restarts = true
		u := c.Unit()
		if len(pol.Files) == 0 || slices.Contains(pol.Units, u) {
			continue
		}
		f := at(i, "restart_unit")
		allowed := strings.Join(pol.Units, ", ")
		if allowed == "" {
			allowed = "none"
		}
		if pol.Known() {
			f.Msg = fmt.Sprintf("%s is not among the units the polkit policy lets the agent restart (%s, in %s): polkit would refuse it; add it to a policy file as docs/actions.md shows, or restart another unit", u, allowed, strings.Join(pol.Files, ", "))
			problems = append(problems, f)
		} else {
			f.Msg = fmt.Sprintf("%s is not among the units of the polkit policy files this user can read (%s); %s could not be read (run check as root to know)", u, allowed, strings.Join(pol.Unreadable, ", "))
			warnings = append(warnings, f)
		}
	}
	if restarts && len(pol.Files) == 0 {
		notes = append(notes, Finding{Key: "actions", Line: lines["actions"],
			Msg: "no polkit policy for tokpulse-agent is installed (" + PolicyFile + "); polkit decides at each restart whether the agent's user may restart the unit"})
	}
	return problems, warnings, notes
}

// actionLines maps "actions", "actions[i].key" to their lines in src.
func actionLines(src []byte) map[string]int {
	out := map[string]int{}
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return out
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "actions" {
			continue
		}
		out["actions"] = root.Content[i].Line
		seq := root.Content[i+1]
		for j, item := range seq.Content {
			if item.Kind != yaml.MappingNode {
				continue
			}
			for k := 0; k+1 < len(item.Content); k += 2 {
				out[fmt.Sprintf("actions[%d].%s", j, item.Content[k].Value)] = item.Content[k].Line
			}
		}
	}
	return out
}
