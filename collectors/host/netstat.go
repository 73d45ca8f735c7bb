package host

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// updateNetstat reports the protocol counters of /proc/net/netstat,
// /proc/net/snmp and /proc/net/snmp6 that host.netstat.fields selects
// (node_exporter's default list), as untyped node_netstat_<Proto>_<Field>.
// procfs parses these files into typed structs without the field names
// node_exporter derives from the header lines, so this is node_exporter's
// own parsing.
func (c *Collector) updateNetstat(_ context.Context, ch chan<- prometheus.Metric) error {
	var stats []netstatField
	for _, f := range []struct {
		name  string
		parse func([]byte) ([]netstatField, error)
	}{{"net/netstat", parseNetstat}, {"net/snmp", parseNetstat}, {"net/snmp6", parseSNMP6}} {
		path := c.procPath(f.name)
		data, err := os.ReadFile(path)
		if err != nil {
			// No snmp6 on a host with IPv6 disabled.
			if f.name == "net/snmp6" && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fmt.Errorf("reading %s: %w", path, err)
		}
		s, err := f.parse(data)
		if err != nil {
			return fmt.Errorf("parsing %s: %w", path, err)
		}
		stats = append(stats, s...)
	}
	seen := map[string]bool{}
	for _, s := range stats {
		key := s.proto + "_" + s.name
		if seen[key] || !c.cfg.Netstat.Fields.Match(key) {
			continue
		}
		seen[key] = true
		v, err := strconv.ParseFloat(s.value, 64)
		if err != nil {
			return fmt.Errorf("value %q of %s: %w", s.value, key, err)
		}
		ch <- mustConst(c.desc("node_netstat_"+key, "Statistic "+s.proto+s.name+"."), prometheus.UntypedValue, v)
	}
	return nil
}

type netstatField struct{ proto, name, value string }

// parseNetstat reads pairs of lines, "Proto: Name1 Name2" then
// "Proto: value1 value2".
func parseNetstat(data []byte) ([]netstatField, error) {
	var out []netstatField
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		names := strings.Split(sc.Text(), " ")
		if !sc.Scan() {
			break
		}
		values := strings.Split(sc.Text(), " ")
		proto := strings.TrimSuffix(names[0], ":")
		if len(names) != len(values) {
			return nil, fmt.Errorf("%s: %d names but %d values", proto, len(names), len(values))
		}
		for i := 1; i < len(names); i++ {
			out = append(out, netstatField{proto, names[i], values[i]})
		}
	}
	return out, sc.Err()
}

// parseSNMP6 reads "Ip6InReceives 123" lines; the protocol ends at its "6".
func parseSNMP6(data []byte) ([]netstatField, error) {
	var out []netstatField
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		if i := strings.Index(f[0], "6"); i != -1 {
			out = append(out, netstatField{f[0][:i+1], f[0][i+1:], f[1]})
		}
	}
	return out, sc.Err()
}
