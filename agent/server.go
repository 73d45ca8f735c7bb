package agent

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
)

// metricsTimeout bounds one /metrics gather; metricsInFlight bounds the
// scrapes served, and the gathers still running, at once.
const (
	metricsTimeout  = 30 * time.Second
	metricsInFlight = 4
)

func newServer(a *Agent) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(a.registry,
		promhttp.HandlerForTransactional(newTimeoutGatherer(a.registry, metricsTimeout, metricsInFlight), promhttp.HandlerOpts{
			ErrorLog:            slog.NewLogLogger(a.logger.Handler(), slog.LevelError),
			ErrorHandling:       promhttp.ContinueOnError,
			MaxRequestsInFlight: metricsInFlight,
		})))
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("Healthy.\n"))
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "Not ready.", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("Ready.\n"))
	})
	mux.HandleFunc("GET /api/v1/status", a.handleStatus)
	mux.HandleFunc("GET /api/v1/alerts", a.serveAlerts)
	mux.HandleFunc("GET /api/v1/outbox", a.handleOutbox)
	mux.HandleFunc("POST /api/v1/outbox/requeue", a.handleRequeue)
	mux.HandleFunc("POST /api/v1/notify/test", a.handleNotifyTest)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<html><head><title>tokpulse-agent</title></head><body><h1>tokpulse-agent</h1><p><a href="/metrics">Metrics</a></p></body></html>`))
	})
	return &http.Server{
		Handler:           newAPIGuard(mux, a),
		ReadHeaderTimeout: 10 * time.Second,
	}
}

// serve runs srv on ln with TLS and basic auth from an exporter-toolkit web
// config file when one is set. It returns nil after Shutdown.
func serve(srv *http.Server, ln net.Listener, webConfigFile string, logger *slog.Logger) error {
	flags := &web.FlagConfig{WebConfigFile: &webConfigFile}
	err := web.Serve(ln, srv, flags, logger)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
