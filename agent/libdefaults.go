package agent

import (
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"
)

// SetLibraryDefaults sets the process-wide settings of the libraries the
// daemon uses, for the daemon's work: cmd/tokpulse-agent calls it before
// the agent starts, and the benchmarks of this package so that they
// measure the same work (docs/performance.md, "Second pass").
//
//   - The PromQL engine starts OpenTelemetry spans on the global provider
//     for every query and selector; the agent exports no traces, and the
//     global provider's default allocates a span and takes a lock each
//     time. The no-op provider makes them free: an interval of the default
//     configuration runs 7 % fewer instructions and allocates 11 % fewer
//     bytes.
//   - A scraper that does not say how it wants UTF-8 names escaped
//     (Prometheus 2, curl) gets them escaped with underscores, which costs
//     a copy of every metric family at every scrape (a fifteenth of a
//     scrape's allocations). Every name the agent exports is a legacy one
//     (the configuration and the textfile parser refuse others), so not
//     escaping writes the same bytes.
func SetLibraryDefaults() {
	otel.SetTracerProvider(noop.NewTracerProvider())
	model.NameEscapingScheme = model.NoEscaping
}
