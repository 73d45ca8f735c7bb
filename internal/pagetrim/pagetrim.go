// Package pagetrim gives back the pages of the agent's own executable that
// only start-up used.
//
// Starting runs every package's initialisation, decodes the configuration,
// parses the rule files, builds templates: code spread over most of the
// 20 MB binary. Linux maps a file page into the process when it is first
// touched, together with its neighbours already in the page cache
// ("fault-around"), and keeps it mapped: after start-up about 16 MB of the
// binary count in the agent's RSS, most of which it never runs again.
//
// Release undoes that once start-up is over: it drops the mappings of the
// read-only parts of the executable (madvise MADV_DONTNEED), so that the
// steady state faults back in only what it runs. Called with drop, it also
//   - marks them as read at random (MADV_RANDOM), so that a fault reads
//     the one page it needs, not the 128 KiB around it (read-around);
//   - drops the executable's pages that no process maps any more from the
//     page cache (posix_fadvise POSIX_FADV_DONTNEED, after flushing them
//     if a fresh install left them dirty).
//
// Those two matter because a fault maps, besides the page it needs, the
// pages around it that the page cache holds (fault-around), and a fault on
// a page that is not cached reads the 128 KiB around it into the cache
// (read-around): with the executable fully cached after exec, dropping the
// mappings alone left 13 MB of it resident in the steady state, whereas
// with neither cached neighbours nor read-around the pages come back one
// by one and it stays at about 9 MB (docs/performance.md, "Third pass").
// Nothing is lost: text and read-only data are read from the file again
// when touched. The price is a read from disk the first time each page
// runs after the drop: the first two scrapes after it took 11.0 and
// 9.8 ms, against a median of 5.6 ms before (docs/performance.md). The
// agent drops a minute after start-up, not at once, so that the first
// answers after a start do not pay it. Writable mappings are never
// touched.
package pagetrim

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Release drops the process's mappings of its executable's read-only
// segments (text, read-only data) and returns how many bytes of address
// space it released. With drop it also marks them as read at random and
// drops the executable's unmapped pages from the page cache.
func Release(drop bool) (int64, error) {
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
		advice := []int{unix.MADV_DONTNEED}
		if drop {
			advice = append(advice, unix.MADV_RANDOM)
		}
		for _, a := range advice {
			if _, _, errno := unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, uintptr(a)); errno != 0 {
				return total, fmt.Errorf("madvise(%d) %#x-%#x: %w", a, lo, hi, errno)
			}
		}
		total += int64(hi - lo)
	}
	if err := sc.Err(); err != nil {
		return total, err
	}
	if total == 0 || !drop {
		return total, nil
	}
	return total, dropFromPageCache("/proc/self/exe")
}

// dropFromPageCache asks the kernel to drop the file's pages that no
// process maps from the page cache. Dirty pages (the binary was installed
// a moment ago and not yet written back) cannot be dropped, so they are
// flushed first; on a file already on disk that costs nothing.
func dropFromPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening the executable: %w", err)
	}
	defer f.Close()
	fd := int(f.Fd())
	var flushErr error
	if err := unix.Fdatasync(fd); err != nil {
		// Not fatal: the clean pages can still be dropped.
		flushErr = fmt.Errorf("flushing the executable's pages: %w", err)
	}
	if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		return errors.Join(flushErr, fmt.Errorf("dropping the executable's pages from the page cache: %w", err))
	}
	return flushErr
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
