package yamlx

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

type labelsRoot struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
	Items  []inner           `yaml:"items"`
	Any    any               `yaml:"any"`
}

// bigMapping writes n "kNNN: vNNN" pairs, indented by indent.
func bigMapping(n int, indent string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%sk%06d: v%06d\n", indent, i, i)
	}
	return b.String()
}

// TestLargeMappingsDecodeWhole: a mapping cut into merge pieces for yaml.v3
// still decodes to every pair, with the mapping's own keys winning over a
// merge, into maps, structs and untyped values alike.
func TestLargeMappingsDecodeWhole(t *testing.T) {
	const n = 1000
	t.Run("map", func(t *testing.T) {
		var r labelsRoot
		if err := Decode("f.yml", []byte("name: a\nlabels:\n"+bigMapping(n, "  ")), &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Labels) != n || r.Labels["k000999"] != "v000999" || r.Labels["k000000"] != "v000000" {
			t.Fatalf("decoded %d labels (k000999=%q)", len(r.Labels), r.Labels["k000999"])
		}
	})
	t.Run("untyped", func(t *testing.T) {
		var r labelsRoot
		if err := Decode("f.yml", []byte("any:\n"+bigMapping(n, "  ")), &r); err != nil {
			t.Fatal(err)
		}
		if m, ok := r.Any.(map[string]any); !ok || len(m) != n {
			t.Fatalf("decoded %T of %d entries", r.Any, len(r.Any.(map[string]any)))
		}
	})
	t.Run("own keys win over a merge", func(t *testing.T) {
		var r labelsRoot
		in := "base: &b {k000001: merged, extra: merged}\nname: a\nlabels:\n  <<: *b\n" + bigMapping(n, "  ")
		err := Decode("f.yml", []byte(in), &r)
		// "base" is not a key of labelsRoot.
		if err == nil || !strings.Contains(err.Error(), `unknown key "base"`) {
			t.Fatalf("error = %v; want only the unknown key base", err)
		}
		if r.Labels["k000001"] != "v000001" || r.Labels["extra"] != "merged" || len(r.Labels) != n+1 {
			t.Fatalf("k000001=%q extra=%q len=%d", r.Labels["k000001"], r.Labels["extra"], len(r.Labels))
		}
	})
	t.Run("unknown keys of a struct", func(t *testing.T) {
		var r labelsRoot
		err := Decode("f.yml", []byte("name: a\n"+bigMapping(n, "")), &r)
		ps, _ := err.(Problems)
		if len(ps) != n || r.Name != "a" {
			t.Fatalf("%d problems, name %q; want %d unknown keys and name a", len(ps), r.Name, n)
		}
	})
}

func TestDuplicateKeys(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"small mapping", "name: a\nlabels:\n  x: 1\n  y: 2\n  x: 3\n", `f.yml:5:3: key "x" is already written at line 3; keep one of them`},
		{"top level", "name: a\nname: b\n", `f.yml:2:1: key "name" is already written at line 1; keep one of them`},
		{"large mapping", "name: a\nlabels:\n" + bigMapping(200, "  ") + "  k000007: again\n", `f.yml:203:3: key "k000007" is already written at line 10; keep one of them`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r labelsRoot
			err := Decode("f.yml", []byte(tc.in), &r)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error:\n%v\nwant:\n%s", err, tc.want)
			}
		})
	}
}

func TestSecondDocumentIsAnError(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"second document", "name: a\n---\nname: b\n", `f.yml:2: a second YAML document starts here; the file must hold one configuration: remove this "---" line and merge what follows into the document above (yaml would otherwise ignore it)`},
		{"leading marker", "---\nname: a\n", ""},
		{"empty trailing document", "name: a\n---\n", ""},
		{"document end marker", "name: a\n...\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r labelsRoot
			err := Decode("f.yml", []byte(tc.in), &r)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("error:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestManyProblemsAreCapped: a file with thousands of mistakes reports the
// first MaxProblems and how many more there are.
func TestManyProblemsAreCapped(t *testing.T) {
	var r labelsRoot
	err := Decode("f.yml", []byte(bigMapping(MaxProblems+500, "")), &r)
	ps, ok := err.(Problems)
	if !ok || len(ps) != MaxProblems+1 {
		t.Fatalf("%d problems; want %d", len(ps), MaxProblems+1)
	}
	if last := ps[len(ps)-1].Msg; last != "500 more problems not shown; fix the ones above first" {
		t.Errorf("last problem = %q", last)
	}
}

// TestAliasesAreWalkedOnce: an alias bomb (each level referring to the
// previous one ten times) must not be expanded by the key walk.
func TestAliasesAreWalkedOnce(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 {x: 1}\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	var v struct {
		A0 map[string]int   `yaml:"a0"`
		A1 []map[string]int `yaml:"a1"`
		A9 []any            `yaml:"a9"`
	}
	done := make(chan error, 1)
	go func() { done <- Decode("f.yml", []byte(b.String()), &v) }()
	select {
	case err := <-done:
		// yaml.v3 refuses the expansion itself when decoding
		// ("excessive aliasing"); an error or not, Decode returned.
		t.Logf("Decode returned: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("Decode of an alias bomb did not return within 20 s")
	}
}

// BenchmarkDecodeLabels measures decoding a large agent.labels map; the
// figure before linearize is in docs/performance.md.
func BenchmarkDecodeLabels(b *testing.B) {
	for _, n := range []int{1000, 10000, 40000} {
		in := []byte("name: a\nlabels:\n" + bigMapping(n, "  "))
		b.Run(fmt.Sprintf("pairs=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				var r labelsRoot
				if err := Decode("f.yml", in, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
