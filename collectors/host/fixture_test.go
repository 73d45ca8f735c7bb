package host

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// neFixture returns a collector reading node_exporter's own fixture tree
// (testdata/node_exporter, see PROVENANCE.md there), configured as
// node_exporter's end-to-end test configures node_exporter.
func neFixture(t *testing.T) *Collector {
	t.Helper()
	root := abs(t, "testdata/node_exporter")
	cfg := DefaultConfig()
	// end-to-end-test.sh: --collector.netclass.ignored-devices=(dmz|int),
	// --collector.textfile.directory=collector/fixtures/textfile/two_metric_files/
	cfg.NetClass.DevicesExclude = yamlx.MustRegexp(`(dmz|int)`)
	cfg.Textfile.Directory = root + "/textfile/two_metric_files"
	// --collector.arp.device-exclude=nope
	cfg.ARP.DevicesExclude = yamlx.MustRegexp(`nope`)
	// node_exporter reads interface counters over netlink, from the test
	// machine rather than the tree, which has no proc/net/dev;
	// TestNetdevOnFixture covers netdev.
	cfg.Network.Enabled = false
	return New(cfg, Options{Paths: Paths{Proc: root + "/proc", Sys: root + "/sys", Rootfs: root}})
}

// notComparable lists the families the agent exposes on the fixture tree
// whose e2e-output.txt value cannot be compared, and why.
var notComparable = map[string]string{
	"node_uname_info":                        "uname(2) of the test machine; node_exporter's e2e test disables uname",
	"node_time_seconds":                      "the test machine's clock; skipped by node_exporter's e2e test too",
	"node_time_zone_offset_seconds":          "the test machine's zone; skipped by node_exporter's e2e test too",
	"node_scrape_collector_duration_seconds": "a duration; skipped by node_exporter's e2e test too",
	"node_textfile_mtime_seconds":            "the checkout's file times; skipped by node_exporter's e2e test too",
	// netdev: node_exporter's e2e test reads the test machine's own "lo"
	// over netlink, not the fixture; TestNetdevOnFixture checks ours.
	"node_network_receive_bytes_total": "netdev", "node_network_receive_packets_total": "netdev",
	"node_network_receive_errs_total": "netdev", "node_network_receive_drop_total": "netdev",
	"node_network_receive_fifo_total": "netdev", "node_network_receive_frame_total": "netdev",
	"node_network_receive_compressed_total": "netdev", "node_network_receive_multicast_total": "netdev",
	"node_network_receive_nohandler_total": "netdev",
	"node_network_transmit_bytes_total":    "netdev", "node_network_transmit_packets_total": "netdev",
	"node_network_transmit_errs_total": "netdev", "node_network_transmit_drop_total": "netdev",
	"node_network_transmit_fifo_total": "netdev", "node_network_transmit_colls_total": "netdev",
	"node_network_transmit_carrier_total": "netdev", "node_network_transmit_compressed_total": "netdev",
}

// notComparablePrefixes: families of collectors node_exporter's e2e test
// disables (filesystem, timex: they read the test machine), checked by
// fixture cases of our own instead.
var notComparablePrefixes = []string{"node_filesystem_", "node_timex_"}

// TestFixtureMatchesNodeExporterE2E runs the host collector on
// node_exporter's fixture tree and compares every family it exposes, name,
// type, labels and values, with node_exporter's own e2e-output.txt for the
// same tree.
func TestFixtureMatchesNodeExporterE2E(t *testing.T) {
	want := parseExposition(t, "testdata/node_exporter/e2e-output.txt")
	got := gather(t, neFixture(t))
	compared := 0
	for _, name := range sortedKeys(got) {
		if _, skip := notComparable[name]; skip || hasAnyPrefix(name, notComparablePrefixes) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			g := got[name]
			w, ok := want[name]
			if !ok {
				t.Fatalf("%s is not in node_exporter's e2e-output.txt", name)
			}
			if g.GetType() != w.GetType() {
				t.Errorf("type %v, node_exporter %v", g.GetType(), w.GetType())
			}
			gs, ws := samples(g), samples(w)
			switch name {
			case "node_scrape_collector_success":
				// node_exporter runs collectors the agent does not have,
				// and its e2e test disables three the agent has.
				ws = slices.DeleteFunc(ws, func(s string) bool { return !hasCollector(gs, s) })
				gs = slices.DeleteFunc(gs, func(s string) bool {
					return slices.ContainsFunc([]string{"filesystem", "timex", "uname"}, func(c string) bool { return strings.Contains(s, `"`+c+`"`) })
				})
			case "node_network_speed_bytes":
				// The e2e test runs with --collector.netclass.ignore-invalid-speed,
				// which drops the -1 Mbit/s (unknown) of bond0; the default,
				// the agent's, reports it as -125000.
				gs = slices.DeleteFunc(gs, func(s string) bool { return strings.HasSuffix(s, " -125000") })
			}
			if !slices.Equal(gs, ws) {
				t.Errorf("samples differ\n--- agent\n%s\n--- node_exporter\n%s", strings.Join(gs, "\n"), strings.Join(ws, "\n"))
			}
		})
		compared++
	}
	t.Logf("%d families compared with node_exporter's e2e-output.txt", compared)
	if compared < 150 {
		t.Errorf("only %d families compared; the fixture tree or the collector lost families", compared)
	}
}

// hasCollector reports whether the agent reports the collector named in an
// e2e node_scrape_collector_success sample.
func hasCollector(agent []string, sample string) bool {
	_, rest, _ := strings.Cut(sample, `collector="`)
	name, _, _ := strings.Cut(rest, `"`)
	for _, s := range agent {
		if strings.Contains(s, `collector="`+name+`"`) {
			return true
		}
	}
	return false
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
