package collectors

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// loadTestLogConfig reads a logs: configuration from testdata.
func loadTestLogConfig(tb testing.TB, file string) Config {
	tb.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := DefaultConfig()
	if err := yamlx.Decode(file, data, &cfg); err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// BenchmarkLinePipeline measures the per-line work of a source with the
// default patterns and the access-log metrics (no I/O): b.N lines of the
// generator's log. bench/logpipeline.sh measures the whole path, file
// reading included, against mtail and grep.
func BenchmarkLinePipeline(b *testing.B) {
	cfg := loadTestLogConfig(b, "testdata/access-metrics.yml")
	data, err := os.ReadFile("testdata/access_sample.log")
	if err != nil {
		b.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	p := newLinePipeline("access", DefaultLogPatterns(), cfg.Logs[0].Metrics, 10, Options{}.withDefaults())
	// As a file source runs it: counters published and locks released
	// after each read of 64 KiB.
	p.batched = true
	now := time.Now()
	b.SetBytes(int64(len(data) / len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	read := 0
	for i := 0; i < b.N; i++ {
		line := lines[i%len(lines)]
		p.process(line, false, now)
		if read += len(line) + 1; read >= 64<<10 {
			p.flush()
			read = 0
		}
	}
	p.flush()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
