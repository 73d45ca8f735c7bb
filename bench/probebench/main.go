// Command probebench measures what HTTP probes cost the agent: it runs N
// probes of one URL on the agent's own scheduler for a while and reports the
// CPU time and the resident memory they added. With -serve it is instead
// the local target server, run as its own process so that its work is not
// counted. bench/probes.sh runs both, and blackbox_exporter beside them.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/theory/jsonpath"

	"github.com/tokpulse/tokpulse-agent/collectors"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

func main() {
	serve := flag.String("serve", "", "serve a /health endpoint on this address instead of probing")
	url := flag.String("url", "http://127.0.0.1:18080/health", "URL every probe requests")
	n := flag.Int("n", 100, "number of probes")
	interval := flag.Duration("interval", 10*time.Second, "interval of each probe")
	duration := flag.Duration("duration", 120*time.Second, "how long to measure")
	flag.Parse()
	if *serve != "" {
		http.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"ok","uptime":12345,"checks":{"database":"ok","redis":"ok"}}`)
		})
		log.Fatal(http.ListenAndServe(*serve, nil))
	}

	cfgs := make([]collectors.ProbeConfig, *n)
	for i := range cfgs {
		c := collectors.DefaultProbeConfig()
		c.Name = "p" + strconv.Itoa(i)
		c.URL = *url
		c.Interval = yamlx.Duration(*interval)
		c.Expect.JSON = []collectors.JSONAssertion{{Path: mustPath("$.status"), Equals: "ok"}}
		cfgs[i] = c
	}
	// The baseline is taken after the probes are built, before any runs:
	// what is measured is the cost of running them.
	p, err := collectors.NewProbes(cfgs, collectors.Options{})
	if err != nil {
		log.Fatal(err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	rss0 := rssBytes()
	cpu0 := cpuTime()
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	start := time.Now()
	var peak atomic.Int64
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for range t.C {
			if r := rssBytes(); r > peak.Load() {
				peak.Store(r)
			}
		}
	}()
	p.Run(ctx)
	wall := time.Since(start)
	cpu := cpuTime() - cpu0
	rss := rssBytes()
	runs := float64(*n) * wall.Seconds() / interval.Seconds()
	fmt.Printf("probes=%d interval=%s wall=%.0fs cpu=%.3fs cpu_pct_of_one_core=%.3f%% approx_runs=%.0f cpu_per_probe_run=%.0fus rss_before=%.1fMiB rss_after=%.1fMiB rss_peak=%.1fMiB extra_rss=%.1fMiB\n",
		*n, *interval, wall.Seconds(), cpu.Seconds(), 100*cpu.Seconds()/wall.Seconds(), runs,
		float64(cpu.Microseconds())/runs, mib(rss0), mib(rss), mib(max(peak.Load(), rss)), mib(max(peak.Load(), rss)-rss0))
}

func mustPath(s string) collectors.JSONPath { return collectors.JSONPath{Path: jsonpath.MustParse(s)} }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
