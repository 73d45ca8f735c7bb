package yamlx

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Every Duration `yaml:"every"`
	Match Regexp   `yaml:"match"`
}

type embedded struct {
	Extra string `yaml:"extra"`
}

type root struct {
	Name     string           `yaml:"name"`
	Items    []inner          `yaml:"items"`
	ByName   map[string]inner `yaml:"by_name"`
	embedded `yaml:",inline"`
}

func (r *root) Validate(c *Checker, path string) {
	if r.Name == "" {
		c.Errorf(Join(path, "name"), "must not be empty")
	}
	for i, it := range r.Items {
		if it.Every.D() > time.Hour {
			c.Errorf(Join(Index(Join(path, "items"), i), "every"), "too long")
		}
	}
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"valid", "name: a\nitems:\n  - every: 1m\n    match: ^x\nextra: e\n", ""},
		{"unknown key in list item", "name: a\nitems:\n  - evry: 1m\n", `f.yml:3:5: items[0].evry: unknown key "evry" in items[0]; did you mean "every"? (valid keys: every, match)`},
		{"unknown key in map value", "name: a\nby_name:\n  x:\n    mach: y\n", `f.yml:4:5: by_name.x.mach: unknown key "mach" in by_name.x; did you mean "match"? (valid keys: every, match)`},
		{"inline keys are known", "name: a\nextra: b\n", ""},
		{"negative duration", "name: a\nitems:\n  - every: -1s\n", `f.yml:3:5: items[0].every: duration "-1s" is negative; write a positive duration such as 10s`},
		{"bad regexp", "name: a\nitems:\n  - match: '('\n", "f.yml:3:5: items[0].match: invalid regular expression \"(\": error parsing regexp: missing closing ): `(` (Go RE2 syntax; quote the value in single quotes)"},
		{"validation points at the written key", "name: a\nitems:\n  - every: 2h\n", `f.yml:3:5: items[0].every: too long`},
		{"validation of a default points at the file", "items: []\n", `f.yml: name: must not be empty`},
		{"list expected", "name: a\nitems: x\n", `f.yml:2:1: items: "x" is not a list (write it as [a, b] or one "- item" per line)`},
		{"every problem at once", "name: ''\nbogus: 1\nitems:\n  - every: 2h\n", "f.yml:1:1: name: must not be empty\nf.yml:2:1: bogus: unknown key \"bogus\" at the top level (valid keys: by_name, extra, items, name)\nf.yml:4:5: items[0].every: too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r root
			err := Decode("f.yml", []byte(tc.in), &r)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Decode error:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestDurationForms(t *testing.T) {
	for in, want := range map[string]time.Duration{"0": 0, "10s": 10 * time.Second, "1m30s": 90 * time.Second, "500ms": 500 * time.Millisecond, "1d": 24 * time.Hour} {
		var v struct {
			D Duration `yaml:"d"`
		}
		if err := Decode("f", []byte("d: "+in), &v); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if v.D.D() != want {
			t.Errorf("%s = %s, want %s", in, v.D.D(), want)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2")
	var logBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("x", "secret", s)
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %#v %+v", s, s, s, s), logBuf.String()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret leaked: %q", out)
		}
	}
	if s.Reveal() != "hunter2" {
		t.Error("Reveal lost the value")
	}
}

func TestSecretFileRead(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/token"
	for content, want := range map[string]string{
		"  abc\n":                "abc",
		"\tabc def\r\n\v\f":      "abc def",
		"abc\u00a0\n":            "abc\u00a0", // not ASCII: kept, as Python's bytes.strip() keeps it
		"\ufeffabc":              "\ufeffabc",
		"0123456789abcdef\n\n\n": "0123456789abcdef",
	} {
		if err := writeFile(path, content); err != nil {
			t.Fatal(err)
		}
		s, err := SecretFile(path).Read()
		if err != nil || s.Reveal() != want {
			t.Errorf("Read of %q = %q, %v; want %q", content, s.Reveal(), err, want)
		}
	}
	if _, err := SecretFile(dir + "/missing").Read(); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file error = %v", err)
	}
}

func TestTypeErrorInFlowListNamesTheItem(t *testing.T) {
	var v struct {
		Codes []int `yaml:"codes"`
	}
	err := Decode("f.yml", []byte("codes: [200, 2xy, 301]\n"), &v)
	want := `f.yml:1:14: codes[1]: "2xy" is not a whole number`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestFailInFlowMappingNamesTheKey(t *testing.T) {
	var v struct {
		Items []inner `yaml:"items"`
	}
	err := Decode("f.yml", []byte("items:\n  - {every: 1s, match: '('}\n"), &v)
	if err == nil || !strings.HasPrefix(err.Error(), "f.yml:2:17: items[0].match: invalid regular expression") {
		t.Errorf("error = %v, want it at items[0].match", err)
	}
}

type listItem struct {
	Name  string   `yaml:"name"`
	Every Duration `yaml:"every"`
}

type listRoot struct {
	Items List[listItem] `yaml:"items"`
}

func (r *listRoot) Validate(c *Checker, path string) {
	for i, it := range r.Items {
		if it.Name == "" {
			c.Errorf(Join(Index(Join(path, "items"), i), "name"), "must not be empty")
		}
	}
}

// TestListKeepsIndexes: an item that fails to decode keeps its slot, so the
// next item's validation error names the right index.
func TestListKeepsIndexes(t *testing.T) {
	var r listRoot
	err := Decode("f.yml", []byte("items:\n  - {name: a, every: -1s}\n  - {name: '', every: 1s}\n"), &r)
	want := "f.yml:2:15: items[0].every: duration \"-1s\" is negative; write a positive duration such as 10s\nf.yml:3:6: items[1].name: must not be empty"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	if len(r.Items) != 2 {
		t.Errorf("%d items decoded, want 2", len(r.Items))
	}
}
