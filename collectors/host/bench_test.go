package host

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// BenchmarkHostGather measures one gather of the host collector with the
// default configuration on this machine's own /proc, /sys and /: what every
// scrape and every agent.interval costs.
//
//	go test -run '^$' -bench HostGather -benchmem ./collectors/host/
func BenchmarkHostGather(b *testing.B) {
	c := New(DefaultConfig(), Options{Paths: Paths{Proc: "/proc", Sys: "/sys", Rootfs: "/"}})
	ch := make(chan prometheus.Metric, 4096)
	n := 0
	var r0, r1 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &r0)
	for b.Loop() {
		if err := c.Update(context.Background(), ch); err != nil {
			b.Fatal(err)
		}
		n = len(ch)
		for len(ch) > 0 {
			<-ch
		}
	}
	_ = unix.Getrusage(unix.RUSAGE_SELF, &r1)
	cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
	b.ReportMetric(float64(n), "series")
	// CPU time, user and system, of the whole process per gather: on a
	// loaded machine, wall time per gather mostly measures the wait for a core.
	b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "cpu-ms/op")
}
