package state

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fill writes a state file of a few hundred KiB, many pages deep, as a
// busy agent's would be (positions, alert states, an outbox backlog).
func fill(t *testing.T, dir string) int64 {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, bucket := range []string{"logs", "alerts", "outbox"} {
		kv := map[string][]byte{}
		for i := range 1500 {
			kv[fmt.Sprintf("%s-%05d", bucket, i)] = bytes.Repeat([]byte{byte(i)}, 100)
		}
		if err := s.Bucket(bucket).PutMany(kv); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestDamagedStateFileIsMovedAside: the damage of issue 12 (a file cut to
// half its size, 64 KiB of junk in its middle, an empty file, junk over
// the meta pages) made bbolt panic at start or was silently taken for a
// new file. Open must never panic: it moves the file aside, says why, and
// starts with an empty, working state file.
func TestDamagedStateFileIsMovedAside(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, size int64)
		reason string
	}{
		{"truncated to half", func(t *testing.T, path string, size int64) {
			if err := os.Truncate(path, size/2); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"64 KiB of junk in the middle", func(t *testing.T, path string, size int64) {
			junk := make([]byte, 64<<10)
			_, _ = rand.Read(junk)
			writeAt(t, path, junk, size/2-32<<10)
		}, ""},
		{"zero length", func(t *testing.T, path string, _ int64) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, "the file is empty (0 bytes)"},
		{"junk over the meta pages", func(t *testing.T, path string, _ int64) {
			writeAt(t, path, bytes.Repeat([]byte{0xA5}, 16<<10), 0)
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			size := fill(t, dir)
			path := filepath.Join(dir, FileName)
			tc.damage(t, path, size)

			var s *Store
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Open panicked: %v", r)
					}
				}()
				var err error
				if s, err = Open(dir); err != nil {
					t.Fatalf("Open: %v", err)
				}
			}()
			defer s.Close()
			rec := s.Recovered()
			if rec == nil {
				t.Fatal("Open took the damaged file for a sound one")
			}
			t.Logf("reason: %s", rec.Reason)
			if tc.reason != "" && rec.Reason != tc.reason {
				t.Errorf("reason %q, want %q", rec.Reason, tc.reason)
			}
			if !strings.HasPrefix(rec.MovedTo, path+".corrupt-") {
				t.Errorf("moved to %s", rec.MovedTo)
			}
			if _, err := os.Stat(rec.MovedTo); err != nil {
				t.Errorf("the damaged file was not kept: %v", err)
			}
			// The new file works, and holds nothing of the old one.
			b := s.Bucket("logs")
			if v, err := b.Get("logs-00001"); err != nil || v != nil {
				t.Errorf("fresh file has logs-00001 = %q, %v", v, err)
			}
			if err := b.Put("k", []byte("v")); err != nil {
				t.Fatalf("writing the fresh file: %v", err)
			}
		})
	}
}

func TestSoundStateFileIsKept(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r := s.Recovered(); r != nil {
		t.Fatalf("a sound file was moved aside: %+v", r)
	}
	if v, _ := s.Bucket("outbox").Get("outbox-01499"); len(v) != 100 {
		t.Errorf("outbox-01499 = %d bytes, want 100", len(v))
	}
}

func TestStateFileThatIsAFIFOIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := mkfifo(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), "is a FIFO (named pipe)") || !strings.Contains(err.Error(), "remove it") {
		t.Fatalf("Open = %v", err)
	}
}

func writeAt(t *testing.T, path string, b []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(path string) error { return syscall.Mkfifo(path, 0o600) }
