// Command agentprof runs the agent in-process exactly as `tokpulse-agent
// run` builds it (agent.New, then Run), with Go's profiling endpoints
// (net/http/pprof) on a second, loopback-only listener, so that an idle or
// busy agent can be profiled without a profiling endpoint in the shipped
// binary. docs/performance.md says what it found.
//
//	go run ./bench/agentprof -config agent.yaml -pprof 127.0.0.1:6061 &
//	go tool pprof -top 'http://127.0.0.1:6061/debug/pprof/profile?seconds=300'
//	go tool pprof -sample_index=inuse_space -top http://127.0.0.1:6061/debug/pprof/heap
//	go tool pprof -sample_index=alloc_space -top http://127.0.0.1:6061/debug/pprof/allocs
//	curl -s http://127.0.0.1:6061/debug/runtime   # runtime/metrics, one per line
//
// With -memprofilerate 1 every allocation is recorded, so that the heap
// profile is the exact live heap rather than a 512 KiB sample.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"syscall"

	"github.com/tokpulse/tokpulse-agent/agent"
)

func main() {
	config := flag.String("config", "", "agent configuration file (default: the embedded default)")
	addr := flag.String("pprof", "127.0.0.1:6061", "address of the profiling endpoints")
	rate := flag.Int("memprofilerate", runtime.MemProfileRate, "runtime.MemProfileRate: 1 records every allocation (exact live heap, slower)")
	flag.Parse()
	runtime.MemProfileRate = *rate
	// The daemon's runtime defaults (cmd/tokpulse-agent run).
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(60)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/runtime", serveRuntimeMetrics)
	go func() {
		if err := http.ListenAndServe(*addr, mux); err != nil {
			logger.Error("pprof listener", "err", err)
			os.Exit(1)
		}
	}()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	a, err := agent.New(agent.Options{ConfigFile: *config, Logger: logger, Build: agent.BuildInfo{Version: "agentprof"}})
	if err != nil {
		logger.Error("Cannot start", "err", err)
		os.Exit(1)
	}
	if err := a.Run(ctx); err != nil {
		logger.Error("Agent failed", "err", err)
		os.Exit(1)
	}
}

// serveRuntimeMetrics prints every runtime/metrics value that is a number:
// the heap's classes, the scavenger, GC cycles, goroutines, scheduler
// latencies' counts.
func serveRuntimeMetrics(w http.ResponseWriter, _ *http.Request) {
	descs := metrics.All()
	samples := make([]metrics.Sample, len(descs))
	for i := range descs {
		samples[i].Name = descs[i].Name
	}
	metrics.Read(samples)
	for _, s := range samples {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			fmt.Fprintf(w, "%s %d\n", s.Name, s.Value.Uint64())
		case metrics.KindFloat64:
			fmt.Fprintf(w, "%s %g\n", s.Name, s.Value.Float64())
		}
	}
}
