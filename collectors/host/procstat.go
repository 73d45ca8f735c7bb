package host

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/procfs"
)

// userHZ is the unit of /proc/stat's CPU times, USER_HZ: 100 on every
// Linux architecture the agent is built for (procfs assumes the same).
const userHZ = 100

// parseProcStat reads /proc/stat into procfs.Stat, as procfs' FS.Stat
// does, without the per-interrupt counts of the intr line (no family
// reports them). procfs parses each cpu line with fmt.Sscanf and every
// number of the intr line (hundreds on a server); with the CPU family in
// the default rules' gather every interval, that was a ninth of the idle
// daemon's CPU (docs/performance.md). TestParseProcStatMatchesProcfs holds
// it to procfs' results on node_exporter's fixture, the agent's own and
// the live file.
func parseProcStat(data []byte, path string) (procfs.Stat, error) {
	st := procfs.Stat{CPU: map[int64]procfs.CPUStat{}}
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		key, rest, _ := bytes.Cut(line, []byte{' '})
		if len(key) == 0 {
			continue
		}
		var err error
		switch string(key) {
		case "btime":
			st.BootTime, err = firstUint(rest)
		case "intr":
			st.IRQTotal, err = firstUint(rest)
		case "ctxt":
			st.ContextSwitches, err = firstUint(rest)
		case "processes":
			st.ProcessCreated, err = firstUint(rest)
		case "procs_running":
			st.ProcessesRunning, err = firstUint(rest)
		case "procs_blocked":
			st.ProcessesBlocked, err = firstUint(rest)
		case "softirq":
			st.SoftIRQTotal, st.SoftIRQ, err = parseSoftIRQ(rest)
		default:
			if !bytes.HasPrefix(key, []byte("cpu")) {
				continue
			}
			var cs procfs.CPUStat
			if cs, err = parseCPULine(rest); err != nil {
				break
			}
			if len(key) == 3 {
				st.CPUTotal = cs
				continue
			}
			id, perr := strconv.ParseInt(string(key[3:]), 10, 64)
			if perr != nil {
				err = perr
				break
			}
			st.CPU[id] = cs
		}
		if err != nil {
			return procfs.Stat{}, fmt.Errorf("parsing %s, line %q: %w", path, line, err)
		}
	}
	return st, nil
}

// uints parses the space-separated numbers of b into dst, in order, and
// returns how many it read; numbers past len(dst) are left unread.
func uints(b []byte, dst []uint64) (int, error) {
	n := 0
	for field := range bytes.FieldsSeq(b) {
		if n == len(dst) {
			break
		}
		v, err := strconv.ParseUint(string(field), 10, 64)
		if err != nil {
			return n, err
		}
		dst[n] = v
		n++
	}
	return n, nil
}

var errNoValue = errors.New("no value")

func firstUint(b []byte) (uint64, error) {
	var v [1]uint64
	n, err := uints(b, v[:])
	if err == nil && n == 0 {
		err = errNoValue
	}
	return v[0], err
}

// parseCPULine reads the times of a cpu line (in USER_HZ ticks) as
// seconds. Older kernels write fewer than ten; the missing ones are 0.
func parseCPULine(b []byte) (procfs.CPUStat, error) {
	var t [10]uint64
	n, err := uints(b, t[:])
	if err == nil && n == 0 {
		err = errNoValue
	}
	s := func(i int) float64 { return float64(t[i]) / userHZ }
	return procfs.CPUStat{
		User: s(0), Nice: s(1), System: s(2), Idle: s(3), Iowait: s(4),
		IRQ: s(5), SoftIRQ: s(6), Steal: s(7), Guest: s(8), GuestNice: s(9),
	}, err
}

func parseSoftIRQ(b []byte) (uint64, procfs.SoftIRQStat, error) {
	var v [11]uint64
	_, err := uints(b, v[:])
	return v[0], procfs.SoftIRQStat{
		Hi: v[1], Timer: v[2], NetTx: v[3], NetRx: v[4], Block: v[5],
		BlockIoPoll: v[6], Tasklet: v[7], Sched: v[8], Hrtimer: v[9], Rcu: v[10],
	}, err
}
