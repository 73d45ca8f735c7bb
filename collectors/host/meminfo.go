package host

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// updateMeminfo reports every field of /proc/meminfo as
// node_memory_<Field>_bytes (kB fields, times 1024) or node_memory_<Field>
// (counts such as HugePages_Total), "(anon)" written "_anon". This is
// node_exporter's own parsing up to 1.9; later releases list the fields
// procfs knows, a subset of the same names and values. Reading every field
// keeps the ones a newer kernel adds (Zswap, SecPageTables) as node_exporter
// 1.5 on Debian 12 does.
func (c *Collector) updateMeminfo(ctx context.Context, ch chan<- prometheus.Metric) error {
	path := c.procPath("meminfo")
	data, release, err := readFile(path)
	defer release()
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	// The file has the same fifty-odd keys at every read: their
	// descriptors are found by the key's bytes, without building the
	// metric's name and help again (the cpu, memory and filesystem
	// families are in the rules' gather every interval).
	err = eachMeminfo(data, func(key []byte, kB bool, v float64) {
		if d := c.meminfoDesc(key, kB); wants(ctx, d.name) {
			ch <- c.labels.MustNew(d.desc, prometheus.GaugeValue, v)
		}
	})
	if err != nil {
		return fmt.Errorf("parsing %s: %w", path, err)
	}
	return nil
}

// meminfoDesc returns the metric of the meminfo field key (in kB when kB
// is set).
func (c *Collector) meminfoDesc(key []byte, kB bool) meminfoMetric {
	c.descsMu.Lock()
	d, ok := c.meminfoDescs[kB][string(key)]
	c.descsMu.Unlock()
	if ok {
		return d
	}
	name := meminfoName(key, kB)
	d = meminfoMetric{name: "node_memory_" + name}
	d.desc = c.desc(d.name, "Memory information field "+name+".")
	c.descsMu.Lock()
	if c.meminfoDescs == nil {
		c.meminfoDescs = map[bool]map[string]meminfoMetric{}
	}
	if c.meminfoDescs[kB] == nil {
		c.meminfoDescs[kB] = map[string]meminfoMetric{}
	}
	c.meminfoDescs[kB][string(key)] = d
	c.descsMu.Unlock()
	return d
}

// meminfoMetric is the metric of a meminfo field.
type meminfoMetric struct {
	name string
	desc *prometheus.Desc
}

// Meminfo reads proc/meminfo (proc is the host's /proc) into its fields
// by the names node_memory_* gives them (MemTotal_bytes, HugePages_Total):
// the one reader of the memory facts, for the metrics and for an alert's
// evidence.
func Meminfo(proc string) (map[string]float64, error) {
	fields, err := readMeminfo(filepath.Join(proc, "meminfo"))
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(fields))
	for _, f := range fields {
		out[f.name] = f.value
	}
	return out, nil
}

// readMeminfo reads and parses the meminfo file at path.
func readMeminfo(path string) ([]meminfoField, error) {
	data, release, err := readFile(path)
	defer release()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	fields, err := parseMeminfo(data)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	return fields, nil
}

type meminfoField struct {
	name  string
	value float64
}

func parseMeminfo(data []byte) ([]meminfoField, error) {
	var out []meminfoField
	err := eachMeminfo(data, func(key []byte, kB bool, v float64) {
		out = append(out, meminfoField{meminfoName(key, kB), v})
	})
	return out, err
}

// eachMeminfo calls f with each line's key (without the colon), whether
// its value is in kB ("kB": the only unit the kernel writes), and its
// value, in bytes for kB values.
func eachMeminfo(data []byte, f func(key []byte, kB bool, v float64)) error {
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		var parts [4][]byte
		n := 0
		for field := range bytes.FieldsSeq(line) {
			if n == len(parts) {
				break
			}
			parts[n] = field
			n++
		}
		switch {
		case n == 0:
			continue
		case n < 2 || n > 3:
			return fmt.Errorf("malformed line %q", line)
		}
		v, ok := decimal(parts[1])
		if !ok {
			return fmt.Errorf("value of %q: %q is not a whole number", parts[0], parts[1])
		}
		key := bytes.TrimSuffix(parts[0], []byte{':'})
		if n == 3 {
			v *= 1024
		}
		f(key, n == 3, v)
	}
	return nil
}

// decimal parses an unsigned decimal number, without the allocation of
// strconv's error (whose message would hold the text).
func decimal(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return float64(v), true
}

// meminfoName is node_exporter's name for a meminfo key: "_bytes" after kB
// fields, "Active(anon)" written "Active_anon".
func meminfoName(key []byte, kB bool) string {
	name := string(key)
	if i := strings.IndexByte(name, '('); i >= 0 {
		name = name[:i] + "_" + strings.Replace(name[i+1:], ")", "", 1)
	}
	if kB {
		name += "_bytes"
	}
	return name
}
