// Package pagetrim gives back the pages of the agent's own executable that
// only start-up used.
//
// Starting runs every package's initialisation, decodes the configuration,
// parses the rule files, builds templates: code spread over most of the
// 20 MB binary. Linux maps a file page into the process when it is first
// touched, together with its neighbours already in the page cache
// ("fault-around", 64 KiB), and keeps it mapped: after start-up about 16 MB
// of the binary count in the agent's RSS, most of which it never runs
// again. Dropping the mappings of the read-only parts of the executable
// (madvise MADV_DONTNEED) once start-up is over leaves the pages in the
// page cache, shared and reclaimable, and lets the steady state fault back
// in only what it runs. Nothing is lost: text and read-only data are read
// from the file again when touched (a minor fault, the page cache still
// holds them). Writable mappings are never touched.
package pagetrim

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Release drops the process's mappings of its executable's read-only
// segments (text, read-only data) and returns how many bytes of address
// space it released them from.
func Release() (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("finding the executable: %w", err)
	}
	// Overlay filesystems may show the underlying file's device in the
	// mappings: the path matches as well.
	exe, _ := os.Readlink("/proc/self/exe")
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("reading the mappings: %w", err)
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lo, hi, ok := readOnlyMappingOf(sc.Text(), st.Dev, st.Ino, exe)
		if !ok {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, unix.MADV_DONTNEED); errno != 0 {
			return total, fmt.Errorf("madvise %#x-%#x: %w", lo, hi, errno)
		}
		total += int64(hi - lo)
	}
	return total, sc.Err()
}

// readOnlyMappingOf parses one line of /proc/self/maps and reports the
// address range when it maps the executable (the file dev/ino, or path)
// privately and read-only ("r-xp" text, "r--p" read-only data). Writable
// mappings ("rw-p": the data segment, whose pages the process has
// written) are never released.
func readOnlyMappingOf(line string, dev, ino uint64, path string) (lo, hi uintptr, ok bool) {
	f := strings.Fields(line)
	if len(f) < 6 || (f[1] != "r-xp" && f[1] != "r--p") {
		return 0, 0, false
	}
	if !sameFile(f[3], f[4], dev, ino) && (path == "" || strings.Join(f[5:], " ") != path) {
		return 0, 0, false
	}
	a, b, found := strings.Cut(f[0], "-")
	if !found {
		return 0, 0, false
	}
	l, err1 := strconv.ParseUint(a, 16, 64)
	h, err2 := strconv.ParseUint(b, 16, 64)
	if err1 != nil || err2 != nil || h <= l {
		return 0, 0, false
	}
	return uintptr(l), uintptr(h), true
}

// sameFile reports whether the maps fields "maj:min" (hex) and inode name
// the file dev/ino.
func sameFile(devField, inoField string, dev, ino uint64) bool {
	if n, err := strconv.ParseUint(inoField, 10, 64); err != nil || n != ino {
		return false
	}
	maj, mnr, found := strings.Cut(devField, ":")
	if !found {
		return false
	}
	ma, err1 := strconv.ParseUint(maj, 16, 32)
	mi, err2 := strconv.ParseUint(mnr, 16, 32)
	return err1 == nil && err2 == nil && unix.Mkdev(uint32(ma), uint32(mi)) == dev
}
