// Package golden compares test output with golden files under testdata/
// and rewrites them when a test runs with -update. It is the one -update
// flag of the packages that import it (go test ./pkg -run Test -update),
// and the one table test of invalid configurations: each
// testdata/invalid-*.yml beside the exact text an operator gets for it,
// in invalid-*.yml.err.
//
// It is a package of its own, apart from internal/testutil, because it
// registers the -update flag: a test binary may define a flag only once.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ from the current output")

// Update reports whether the test runs with -update.
func Update() bool { return *update }

// Compare checks got against the golden file path; with -update it writes
// got there first. hint says how to rewrite it, for the failure message.
func Compare(t testing.TB, path, got, hint string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (%s -update writes it)", err, hint)
	}
	if got != string(want) {
		t.Errorf("%s differs (rerun with -update after checking the change):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// InvalidConfigs runs one subtest per file that glob matches (there must
// be at least one): reject returns what the operator gets for the file
// (an error's text and a newline, or a command's output) and fails the
// test if the file was accepted; that must equal the file's golden,
// FILE.err. hint is the go test command that runs the test.
func InvalidConfigs(t *testing.T, glob, hint string, reject func(t *testing.T, file string) string) {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s: %v", glob, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			Compare(t, f+".err", reject(t, f), hint)
		})
	}
}
