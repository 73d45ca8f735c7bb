package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// PatchedCopy copies the directory src into a new temporary directory,
// applies the unified diff patchFile to the copy with patch(1) -p1, as a
// reader of the diff would, and returns the copy. Fixtures vendored from
// another project stay as they came; the change a test needs is the diff
// beside them, applied mechanically.
func PatchedCopy(t testing.TB, src, patchFile string) string {
	t.Helper()
	patch := Require(t, "patch")
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
	// CopyFS keeps the fixtures' read-only modes; patch must write.
	err := filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chmod(p, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	diff, err := os.ReadFile(patchFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(patch, "-p1", "--batch", "--forward", "-d", dst)
	cmd.Stdin = bytes.NewReader(diff)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("patch -p1 < %s: %v\n%s", patchFile, err, out)
	}
	return dst
}
