package pagetrim

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadOnlyMappingOf(t *testing.T) {
	dev := unix.Mkdev(0xfd, 0x01)
	for _, tc := range []struct {
		name, line string
		ok         bool
		lo, hi     uintptr
	}{
		{"text", "00400000-00cb5000 r-xp 00000000 fd:01 1234 /usr/bin/tokpulse-agent", true, 0x400000, 0xcb5000},
		{"read-only data", "00cb5000-015f2000 r--p 008b5000 fd:01 1234 /usr/bin/tokpulse-agent", true, 0xcb5000, 0x15f2000},
		{"data segment, written", "015f2000-01687000 rw-p 011f2000 fd:01 1234 /usr/bin/tokpulse-agent", false, 0, 0},
		{"another file", "7f00-8f00 r-xp 00000000 fd:01 99 /usr/lib/libc.so.6", false, 0, 0},
		{"same inode, other device", "00400000-00cb5000 r-xp 00000000 08:02 1234 /mnt/tokpulse-agent", false, 0, 0},
		{"shared mapping (the state file)", "7f00-8f00 r--s 00000000 fd:01 1234 /usr/bin/tokpulse-agent", false, 0, 0},
		{"overlay: path only", "00400000-00cb5000 r-xp 00000000 00:2e 777 /usr/bin/tokpulse-agent", true, 0x400000, 0xcb5000},
		{"anonymous", "c000000000-c000400000 rw-p 00000000 00:00 0", false, 0, 0},
		{"malformed", "00400000 r-xp 0 fd:01 1234 /usr/bin/tokpulse-agent", false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi, ok := readOnlyMappingOf(tc.line, dev, 1234, "/usr/bin/tokpulse-agent")
			if ok != tc.ok || lo != tc.lo || hi != tc.hi {
				t.Errorf("got %#x-%#x %t, want %#x-%#x %t", lo, hi, ok, tc.lo, tc.hi, tc.ok)
			}
		})
	}
}

// TestRelease gives back the test binary's start-up pages: RssFile drops,
// and the process goes on running (what it touches faults back in).
func TestRelease(t *testing.T) {
	before := rssFileKB(t)
	n, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKB(t)
	t.Logf("released %d bytes of mappings; RssFile %d kB before, %d kB after", n, before, after)
	if n == 0 {
		t.Fatal("no mapping of the executable found")
	}
	if after >= before {
		t.Errorf("RssFile %d kB after, %d kB before: nothing given back", after, before)
	}
	// Code that ran before still runs.
	if _, err := os.ReadFile("/proc/self/status"); err != nil {
		t.Fatal(err)
	}
}

func rssFileKB(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}
