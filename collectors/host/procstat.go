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

// fields calls f with each space-separated field of b, in order, until f
// returns false.
func fields(b []byte, f func(i int, field []byte) bool) {
	for i := 0; ; i++ {
		b = bytes.TrimLeft(b, " ")
		if len(b) == 0 {
			return
		}
		var field []byte
		field, b, _ = bytes.Cut(b, []byte{' '})
		if !f(i, field) {
			return
		}
	}
}

func firstUint(b []byte) (uint64, error) {
	var v uint64
	var err error
	found := false
	fields(b, func(_ int, field []byte) bool {
		v, err = strconv.ParseUint(string(field), 10, 64)
		found = true
		return false
	})
	if !found {
		return 0, errNoValue
	}
	return v, err
}

var errNoValue = errors.New("no value")

// parseCPULine reads the times of a cpu line (in USER_HZ ticks) as
// seconds. Older kernels write fewer than ten; the missing ones are 0.
func parseCPULine(b []byte) (procfs.CPUStat, error) {
	var cs procfs.CPUStat
	dst := [...]*float64{&cs.User, &cs.Nice, &cs.System, &cs.Idle, &cs.Iowait, &cs.IRQ, &cs.SoftIRQ, &cs.Steal, &cs.Guest, &cs.GuestNice}
	var err error
	n := 0
	fields(b, func(i int, field []byte) bool {
		if i >= len(dst) {
			return false
		}
		var v uint64
		if v, err = strconv.ParseUint(string(field), 10, 64); err != nil {
			return false
		}
		*dst[i] = float64(v) / userHZ
		n++
		return true
	})
	if err == nil && n == 0 {
		err = errNoValue
	}
	return cs, err
}

func parseSoftIRQ(b []byte) (uint64, procfs.SoftIRQStat, error) {
	var s procfs.SoftIRQStat
	var total uint64
	dst := [...]*uint64{&total, &s.Hi, &s.Timer, &s.NetTx, &s.NetRx, &s.Block, &s.BlockIoPoll, &s.Tasklet, &s.Sched, &s.Hrtimer, &s.Rcu}
	var err error
	fields(b, func(i int, field []byte) bool {
		if i >= len(dst) {
			return false
		}
		*dst[i], err = strconv.ParseUint(string(field), 10, 64)
		return err == nil
	})
	return total, s, err
}
