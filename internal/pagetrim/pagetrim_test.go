package pagetrim

import (
	"os"
	"slices"
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
// and the process goes on running (what it touches faults back in). With
// drop, the page cache also holds fewer of the executable's pages and its
// read-only mappings are marked as read at random; without, neither.
func TestRelease(t *testing.T) {
	t.Run("unmap", func(t *testing.T) { testRelease(t, false) })
	t.Run("unmap and drop", func(t *testing.T) { testRelease(t, true) })
}

func testRelease(t *testing.T, drop bool) {
	before := rssFileKB(t)
	cachedBefore := cachedPages(t, "/proc/self/exe")
	n, err := Release(drop)
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
	cachedAfter := cachedPages(t, "/proc/self/exe")
	random := randomReadMappings(t)
	t.Logf("executable's pages in the page cache: %d before, %d after; %d mappings read at random", cachedBefore, cachedAfter, random)
	switch {
	case drop && cachedAfter >= cachedBefore:
		t.Errorf("page cache holds %d of the executable's pages after, %d before: none dropped", cachedAfter, cachedBefore)
	case drop && random == 0:
		t.Error("no read-only mapping of the executable is marked as read at random (VmFlags rr)")
	case !drop && cachedAfter < cachedBefore:
		t.Errorf("page cache holds %d of the executable's pages after, %d before: dropped without drop", cachedAfter, cachedBefore)
	case !drop && random != 0:
		t.Errorf("%d mappings marked as read at random without drop", random)
	}
	// Code that ran before still runs.
	if _, err := os.ReadFile("/proc/self/status"); err != nil {
		t.Fatal(err)
	}
}

// cachedPages counts the file's pages in the page cache (cachestat(2),
// Linux 6.5).
func cachedPages(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Cachestat_t
	if err := unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{}, &st, 0); err != nil {
		t.Fatalf("cachestat %s: %v (needs Linux 6.5)", path, err)
	}
	return st.Cache
}

// randomReadMappings counts the executable's read-only mappings whose
// VmFlags in /proc/self/smaps carry "rr" (MADV_RANDOM).
func randomReadMappings(t *testing.T) int {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	n, inExe := 0, false
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 6 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			inExe = (f[1] == "r-xp" || f[1] == "r--p") && strings.Join(f[5:], " ") == exe
		case inExe && len(f) > 0 && f[0] == "VmFlags:" && slices.Contains(f[1:], "rr"):
			n++
		}
	}
	return n
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
