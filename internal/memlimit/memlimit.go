// Package memlimit sets the Go runtime's soft memory limit (GOMEMLIMIT)
// below the memory limits of the cgroup the agent runs in, so that the
// garbage collector works harder before the kernel would throttle
// (memory.high) or kill (memory.max) the agent. The unit sets MemoryHigh=
// and MemoryMax=; an operator who changes them with "systemctl edit" moves
// the Go limit with them, and the same holds in a container. An explicit
// GOMEMLIMIT in the environment always wins.
package memlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
)

// Fraction of the cgroup's lowest limit given to the Go runtime. The rest
// is for what the cgroup counts and the Go runtime does not: the pages of
// the binary and of the log files read (page cache charged to the
// cgroup), and the check commands (psql, redis-cli) that run in the same
// cgroup. docs/performance.md ("Bounded by construction") has the figures.
const (
	fractionNum = 3
	fractionDen = 4
)

// Paths locate /proc and the cgroup2 mount; tests point them at fixtures.
type Paths struct {
	Proc   string // default /proc
	Cgroup string // default /sys/fs/cgroup
}

// Result says what Apply did.
type Result struct {
	// Limit is the Go memory limit in force afterwards, in bytes
	// (math.MaxInt64: none).
	Limit int64
	// Source says where it came from: "GOMEMLIMIT", the cgroup file that
	// set it (".../memory.high"), or "" when nothing limits the cgroup.
	Source string
	// CgroupLimit is the cgroup's lowest limit the Go limit derives from
	// (0 when none).
	CgroupLimit int64
}

// Apply sets the Go memory limit from the cgroup unless GOMEMLIMIT is set,
// and returns what is in force.
func Apply(p Paths) (Result, error) {
	if os.Getenv("GOMEMLIMIT") != "" {
		// The runtime parsed it at start ("off" included).
		return Result{Limit: debug.SetMemoryLimit(-1), Source: "GOMEMLIMIT"}, nil
	}
	lim, src, err := CgroupLimit(p)
	if err != nil || lim <= 0 {
		return Result{Limit: debug.SetMemoryLimit(-1)}, err
	}
	goLimit := lim / fractionDen * fractionNum
	debug.SetMemoryLimit(goLimit)
	return Result{Limit: goLimit, Source: src, CgroupLimit: lim}, nil
}

// CgroupLimit returns the lowest memory limit of the process's cgroup and
// its ancestors, and the file that set it; 0 when none is set. On cgroup
// v2 the limits are memory.high and memory.max; on the legacy hierarchy
// (cgroup v1: RHEL 8, hosts booted with it), the memory controller's
// memory.limit_in_bytes.
func CgroupLimit(p Paths) (int64, string, error) {
	if p.Proc == "" {
		p.Proc = "/proc"
	}
	if p.Cgroup == "" {
		p.Cgroup = "/sys/fs/cgroup"
	}
	v2, v1, err := ownCgroups(filepath.Join(p.Proc, "self", "cgroup"))
	if err != nil {
		return 0, "", err
	}
	if v1 != "" {
		if _, err := os.Stat(filepath.Join(p.Cgroup, "memory")); err == nil {
			return lowestLimit(filepath.Join(p.Cgroup, "memory"), v1, []string{"memory.limit_in_bytes"})
		}
	}
	if v2 == "" {
		return 0, "", nil
	}
	return lowestLimit(p.Cgroup, v2, []string{"memory.high", "memory.max"})
}

// lowestLimit returns the lowest of the files names in the cgroup rel
// under root and its ancestors.
func lowestLimit(root, rel string, names []string) (int64, string, error) {
	var lowest int64
	var source string
	dir := filepath.Join(root, rel)
	for {
		for _, name := range names {
			file := filepath.Join(dir, name)
			v, err := readLimit(file)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return 0, "", err
			}
			if v > 0 && (lowest == 0 || v < lowest) {
				lowest, source = v, file
			}
		}
		if dir == root || dir == filepath.Dir(dir) {
			break
		}
		dir = filepath.Dir(dir)
	}
	return lowest, source, nil
}

// ownCgroups returns the process's cgroup v2 path ("0::/system.slice/x")
// and its cgroup v1 memory controller's path ("4:memory:/x"), "" for
// those it does not have.
func ownCgroups(file string) (v2, v1 string, err error) {
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", "", nil
		}
		return "", "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		path := filepath.Clean("/" + parts[2])
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = path
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			v1 = path
		}
	}
	return v2, v1, sc.Err()
}

// unlimitedV1 is where cgroup v1 reports no limit (PAGE_COUNTER_MAX pages,
// rounded); anything at or above it is no limit.
const unlimitedV1 = 1 << 62

// readLimit reads a memory.high, memory.max or memory.limit_in_bytes file:
// a number of bytes, or "max" (no limit, returned as 0).
func readLimit(file string) (int64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number of bytes: %w", file, s, err)
	}
	if v >= unlimitedV1 {
		return 0, nil
	}
	return v, nil
}
