package host

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestUpdateWantedLeavesOutUnreadFields: the rules' gather of the memory
// and filesystem families hands over only the metrics some selector may
// read, without node_scrape_collector_*; a scrape (no filter) gets them
// all.
func TestUpdateWantedLeavesOutUnreadFields(t *testing.T) {
	c := New(DefaultConfig(), Options{Paths: Paths{Proc: "/proc", Sys: "/sys", Rootfs: "/"}})
	reads := []string{"node_memory_MemAvailable_bytes", "node_filesystem_avail_bytes"}
	want := func(prefix string) bool {
		return slices.ContainsFunc(reads, func(r string) bool { return strings.HasPrefix(r, prefix) })
	}
	// The textfile family runs in every rules' gather (its files may hold
	// any name); its own node_textfile_* series come with it.
	got := slices.DeleteFunc(gatheredNames(t, c, want), func(n string) bool { return strings.HasPrefix(n, "node_textfile_") })
	slices.Sort(reads)
	if !slices.Equal(got, reads) {
		t.Errorf("the rules' gather handed over %v, want only %v", got, reads)
	}
	all := gatheredNames(t, c, nil)
	for _, name := range []string{"node_scrape_collector_success", "node_memory_MemTotal_bytes", "node_memory_Active_anon_bytes", "node_filesystem_size_bytes", "node_filesystem_files_free", "node_filesystem_mount_info", "node_cpu_seconds_total"} {
		if !slices.Contains(all, name) {
			t.Errorf("a scrape lacks %s", name)
		}
	}
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// gatheredNames returns the sorted metric names UpdateWanted sends.
func gatheredNames(t *testing.T, c *Collector, want func(string) bool) []string {
	t.Helper()
	ch := make(chan prometheus.Metric, 4096)
	if err := c.UpdateWanted(context.Background(), ch, want); err != nil {
		t.Fatal(err)
	}
	close(ch)
	var names []string
	for m := range ch {
		if n := fqName.FindStringSubmatch(m.Desc().String()); n != nil && !slices.Contains(names, n[1]) {
			names = append(names, n[1])
		}
	}
	slices.Sort(names)
	return names
}
