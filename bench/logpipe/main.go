// Command logpipe runs the agent's log pipeline (the logs: collector:
// tailer, default patterns, log-derived metrics) over one file from its
// start to its end and prints what it counted, the time it took and its
// peak memory. bench/logpipeline.sh runs it beside mtail and grep.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"sort"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tokpulse/tokpulse-agent/collectors"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

type adapter struct{ c collectors.Collector }

func (a adapter) Describe(chan<- *prometheus.Desc) {}
func (a adapter) Collect(ch chan<- prometheus.Metric) {
	_ = a.c.Update(context.Background(), ch)
}

func main() {
	configFile := flag.String("config", "", "YAML with a logs: list; the first source is used, its paths replaced by -file")
	file := flag.String("file", "", "log file to read")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "logpipe:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "logpipe:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*configFile, *file); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "logpipe:", err)
		os.Exit(1)
	}
}

func run(configFile, file string) error {
	data, err := os.ReadFile(configFile)
	if err != nil {
		return err
	}
	cfg := collectors.DefaultConfig()
	if err := yamlx.Decode(configFile, data, &cfg); err != nil {
		return err
	}
	if len(cfg.Logs) == 0 {
		return fmt.Errorf("%s has no logs: source", configFile)
	}
	st, err := os.Stat(file)
	if err != nil {
		return err
	}
	lc := cfg.Logs[0]
	lc.Paths, lc.StartAt = []string{file}, "beginning"
	lc.PollInterval = yamlx.Duration(10 * time.Millisecond)
	// The whole file is a backlog: measure the full work on every line,
	// not what a source sheds when it is far behind.
	lc.ShedBacklogBytes = 0
	src := collectors.NewLogFile(lc, collectors.Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(adapter{src})

	var before syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { src.Run(ctx); close(done) }()
	var mfs []*dto.MetricFamily
	for {
		time.Sleep(20 * time.Millisecond)
		if mfs, err = reg.Gather(); err != nil {
			return err
		}
		if value(mfs, "tokpulse_log_bytes_total", nil) >= float64(st.Size()) {
			break
		}
	}
	wall := time.Since(start)
	cancel()
	<-done
	var after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := tv(after.Utime) + tv(after.Stime) - tv(before.Utime) - tv(before.Stime)

	lines := value(mfs, "tokpulse_log_lines_total", nil)
	fmt.Printf("lines=%.0f", lines)
	for _, p := range []string{"error", "auth", "rate_limit", "webhook"} {
		fmt.Printf(" %s=%.0f", p, value(mfs, "tokpulse_log_matches_total", map[string]string{"pattern": p}))
	}
	classes := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "tokpulse_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "status" {
					classes[l.GetValue()[:1]+"xx"] += m.GetCounter().GetValue()
					if l.GetValue() == "429" {
						classes["429"] += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	keys := make([]string, 0, len(classes))
	for k := range classes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf(" %s=%.0f", k, classes[k])
	}
	hcount := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "tokpulse_http_request_duration_seconds" {
			for _, m := range mf.GetMetric() {
				hcount += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	fmt.Printf(" duration_count=%.0f\n", hcount)
	fmt.Printf("wall_s=%.3f cpu_s=%.3f lines_per_cpu_s=%.0f lines_per_wall_s=%.0f maxrss_kb=%d\n",
		wall.Seconds(), cpu, lines/cpu, lines/wall.Seconds(), after.Maxrss)
	return nil
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func value(mfs []*dto.MetricFamily, name string, labels map[string]string) float64 {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == k && l.GetValue() == v
				}
				if !found {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}
