package host

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
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
func (c *Collector) updateMeminfo(_ context.Context, ch chan<- prometheus.Metric) error {
	fields, err := readMeminfo(c.procPath("meminfo"))
	if err != nil {
		return err
	}
	for _, f := range fields {
		name := "node_memory_" + f.name
		ch <- c.labels.MustNew(c.desc(name, "Memory information field "+f.name+"."), prometheus.GaugeValue, f.value)
	}
	return nil
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
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		parts := strings.Fields(sc.Text())
		if len(parts) == 0 {
			continue
		}
		if len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("malformed line %q", sc.Text())
		}
		v, err := strconv.ParseFloat(parts[1], 64)
		if err != nil {
			return nil, fmt.Errorf("value of %q: %w", parts[0], err)
		}
		key := strings.TrimSuffix(parts[0], ":")
		if len(parts) == 3 { // "kB": the only unit the kernel writes
			v *= 1024
			key += "_bytes"
		}
		// "Active(anon)" → "Active_anon"
		if i := strings.IndexByte(key, '('); i >= 0 {
			key = key[:i] + "_" + strings.Replace(key[i+1:], ")", "", 1)
		}
		out = append(out, meminfoField{key, v})
	}
	return out, sc.Err()
}
