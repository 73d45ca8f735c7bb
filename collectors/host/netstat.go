package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// netstatState keeps, across gathers, which "Proto_Field" names the fields
// expression selects: the files hold hundreds of fields, the same at every
// gather, and only a few dozen are reported.
type netstatState struct {
	mu       sync.Mutex
	selected map[string]bool
	key      []byte
}

// updateNetstat reports the protocol counters of /proc/net/netstat,
// /proc/net/snmp and /proc/net/snmp6 that host.netstat.fields selects
// (node_exporter's default list), as untyped node_netstat_<Proto>_<Field>.
// procfs parses these files into typed structs without the field names
// node_exporter derives from the header lines, so this is node_exporter's
// own parsing, done on bytes: the files are read at every gather.
func (c *Collector) updateNetstat(_ context.Context, ch chan<- prometheus.Metric) error {
	st := &c.netstat
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.selected == nil {
		st.selected = map[string]bool{}
	}
	seen := map[string]bool{}
	emit := func(proto, name, value []byte) error {
		st.key = append(append(append(st.key[:0], proto...), '_'), name...)
		sel, known := st.selected[string(st.key)]
		if !known {
			sel = c.cfg.Netstat.Fields.Match(string(st.key))
			st.selected[string(st.key)] = sel
		}
		if !sel || seen[string(st.key)] {
			return nil
		}
		key := string(st.key)
		seen[key] = true
		v, err := strconv.ParseFloat(string(value), 64)
		if err != nil {
			return fmt.Errorf("value %q of %s: %w", value, key, err)
		}
		ch <- c.labels.MustNew(c.desc("node_netstat_"+key, "Statistic "+string(proto)+string(name)+"."), prometheus.UntypedValue, v)
		return nil
	}
	for _, f := range []struct {
		name  string
		parse func([]byte, func(proto, name, value []byte) error) error
	}{{"net/netstat", parseNetstat}, {"net/snmp", parseNetstat}, {"net/snmp6", parseSNMP6}} {
		path := c.procPath(f.name)
		data, release, err := readFile(path)
		if err != nil {
			// No snmp6 on a host with IPv6 disabled.
			if f.name == "net/snmp6" && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fmt.Errorf("reading %s: %w", path, err)
		}
		err = f.parse(data, emit)
		release()
		if err != nil {
			return fmt.Errorf("parsing %s: %w", path, err)
		}
	}
	return nil
}

// parseNetstat reads pairs of lines, "Proto: Name1 Name2" then
// "Proto: value1 value2".
func parseNetstat(data []byte, emit func(proto, name, value []byte) error) error {
	for len(data) > 0 {
		var names, values []byte
		names, data, _ = bytes.Cut(data, []byte{'\n'})
		values, data, _ = bytes.Cut(data, []byte{'\n'})
		proto, names, _ := bytes.Cut(names, []byte(": "))
		vproto, values, _ := bytes.Cut(values, []byte(": "))
		if !bytes.Equal(bytes.TrimSuffix(proto, []byte(":")), bytes.TrimSuffix(vproto, []byte(":"))) {
			return fmt.Errorf("%s: names and values out of step", proto)
		}
		proto = bytes.TrimSuffix(proto, []byte(":"))
		for len(names) > 0 {
			var n, v []byte
			n, names, _ = bytes.Cut(names, []byte{' '})
			if len(values) == 0 {
				return fmt.Errorf("%s: more names than values", proto)
			}
			v, values, _ = bytes.Cut(values, []byte{' '})
			if err := emit(proto, n, v); err != nil {
				return err
			}
		}
		if len(values) > 0 {
			return fmt.Errorf("%s: more values than names", proto)
		}
	}
	return nil
}

// parseSNMP6 reads "Ip6InReceives   123" lines; the protocol ends at its "6".
func parseSNMP6(data []byte, emit func(proto, name, value []byte) error) error {
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		f := bytes.Fields(line)
		if len(f) < 2 {
			continue
		}
		if i := bytes.IndexByte(f[0], '6'); i != -1 {
			if err := emit(f[0][:i+1], f[0][i+1:], f[1]); err != nil {
				return err
			}
		}
	}
	return nil
}
