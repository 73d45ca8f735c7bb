package safefile

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// within fails the test if fn has not returned after d: the property under
// test is that nothing here ever blocks.
func within(t *testing.T, d time.Duration, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("still blocked after %s", d)
	}
}

func TestReadFileRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	link := filepath.Join(dir, "link-to-fifo")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, kind string
	}{
		{"fifo", fifo, "FIFO (named pipe)"},
		{"symlink to a fifo", link, "FIFO (named pipe)"},
		{"socket", sock, "socket"},
		{"dev zero", "/dev/zero", "character device"},
		{"dev null", "/dev/null", "character device"},
		{"directory", dir, "directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			within(t, 5*time.Second, func() {
				_, err := ReadFile(tc.path, MaxConfig, "configuration file")
				if !errors.Is(err, ErrNotRegular) {
					t.Fatalf("ReadFile(%s) = %v; want ErrNotRegular", tc.path, err)
				}
				for _, want := range []string{tc.path, tc.kind, "point the setting at a regular file"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q lacks %q", err, want)
					}
				}
			})
		})
	}
}

func TestReadFileCapsTheSize(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		size int
		ok   bool
	}{
		{"empty", 0, true},
		{"exactly the cap", 1024, true},
		{"one byte over", 1025, false},
		{"far over", 1 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, make([]byte, tc.size), 0o600); err != nil {
				t.Fatal(err)
			}
			data, err := ReadFile(p, 1024, "template")
			if tc.ok {
				if err != nil || len(data) != tc.size {
					t.Fatalf("ReadFile = %d bytes, %v; want %d bytes", len(data), err, tc.size)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("ReadFile = %v; want ErrTooLarge", err)
			}
			for _, want := range []string{"template " + p, "1 KiB"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestOpenMissingFileKeepsNotExist(t *testing.T) {
	_, _, err := Open(filepath.Join(t.TempDir(), "missing"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open(missing) = %v; want ErrNotExist", err)
	}
}

// TestOpenFIFOSwappedInAfterStat: the check before open cannot see a FIFO
// that replaces the file between stat and open; O_NONBLOCK must make that
// open return, and the check on the descriptor refuse it. The race is
// forced by opening a FIFO with Open's own flags.
func TestOpenFIFOSwappedInAfterStat(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	within(t, 5*time.Second, func() {
		f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckRegular(fifo, fi); !errors.Is(err, ErrNotRegular) {
			t.Fatalf("CheckRegular on the open FIFO = %v; want ErrNotRegular", err)
		}
	})
}

func TestReadableByOthers(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode os.FileMode
		want bool
	}{{0o600, false}, {0o400, false}, {0o640, false}, {0o604, true}, {0o644, true}} {
		p := filepath.Join(dir, tc.mode.String())
		if err := os.WriteFile(p, []byte("s"), tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil { // past the umask
			t.Fatal(err)
		}
		_, fi, err := Read(p, MaxSecret, "secret file")
		if err != nil {
			t.Fatal(err)
		}
		if got := ReadableByOthers(fi); got != tc.want {
			t.Errorf("ReadableByOthers(%v) = %v, want %v", tc.mode, got, tc.want)
		}
	}
}
