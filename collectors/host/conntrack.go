package host

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

// updateConntrack reports the connection-tracking table's size and limit
// (/proc/sys/net/netfilter) and its statistics summed over CPUs
// (/proc/net/stat/nf_conntrack, procfs). Without the nf_conntrack module
// there is nothing to report (ErrNoData), as in node_exporter.
func (c *Collector) updateConntrack(_ context.Context, ch chan<- prometheus.Metric) error {
	g := func(name, help string, v float64) {
		ch <- c.labels.MustNew(c.desc("node_nf_conntrack_"+name, help), prometheus.GaugeValue, v)
	}
	count, err := readUint(c.procPath("sys/net/netfilter/nf_conntrack_count"))
	if err != nil {
		return conntrackErr(err)
	}
	g("entries", "Number of currently allocated flow entries for connection tracking.", float64(count))
	limit, err := readUint(c.procPath("sys/net/netfilter/nf_conntrack_max"))
	if err != nil {
		return conntrackErr(err)
	}
	g("entries_limit", "Maximum size of connection tracking table.", float64(limit))
	fs, err := c.procFS()
	if err != nil {
		return err
	}
	stats, err := fs.ConntrackStat()
	if err != nil {
		return conntrackErr(err)
	}
	var found, invalid, ignore, insert, insertFailed, drop, earlyDrop, searchRestart uint64
	for _, s := range stats {
		found += s.Found
		invalid += s.Invalid
		ignore += s.Ignore
		insert += s.Insert
		insertFailed += s.InsertFailed
		drop += s.Drop
		earlyDrop += s.EarlyDrop
		searchRestart += s.SearchRestart
	}
	g("stat_found", "Number of searched entries which were successful.", float64(found))
	g("stat_invalid", "Number of packets seen which can not be tracked.", float64(invalid))
	g("stat_ignore", "Number of packets seen which are already connected to a conntrack entry.", float64(ignore))
	g("stat_insert", "Number of entries inserted into the list.", float64(insert))
	g("stat_insert_failed", "Number of entries for which list insertion was attempted but failed.", float64(insertFailed))
	g("stat_drop", "Number of packets dropped due to conntrack failure.", float64(drop))
	g("stat_early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.", float64(earlyDrop))
	g("stat_search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes.", float64(searchRestart))
	return nil
}

func conntrackErr(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: conntrack not loaded (%v)", ErrNoData, err)
	}
	return err
}
