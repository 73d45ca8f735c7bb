package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/coreos/go-systemd/v22/journal"
)

// newLogger builds the agent's logger: text or JSON on stderr. When stderr
// is the journal's stream (the agent runs under systemd), every line
// starts with its sd-daemon(3) priority prefix ("<3>" for errors), which
// journald strips and records as the entry's priority, so that
// `journalctl -p err -u tokpulse-agent` shows exactly the agent's errors.
func newLogger(stderr io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: level}
	handler := func(w io.Writer) slog.Handler {
		if format == "json" {
			return slog.NewJSONHandler(w, hopts)
		}
		return slog.NewTextHandler(w, hopts)
	}
	if ok, _ := journal.StderrIsJournalStream(); !ok {
		return slog.New(handler(stderr))
	}
	return slog.New(&priorityHandler{
		debug: handler(prefixWriter{stderr, "<7>"}),
		info:  handler(prefixWriter{stderr, "<6>"}),
		warn:  handler(prefixWriter{stderr, "<4>"}),
		err:   handler(prefixWriter{stderr, "<3>"}),
	})
}

// prefixWriter writes prefix before each write; slog's handlers write one
// record per call.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := p.w.Write(append([]byte(p.prefix), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// priorityHandler hands each record to the handler of its level.
type priorityHandler struct{ debug, info, warn, err slog.Handler }

func (h *priorityHandler) pick(l slog.Level) slog.Handler {
	switch {
	case l >= slog.LevelError:
		return h.err
	case l >= slog.LevelWarn:
		return h.warn
	case l >= slog.LevelInfo:
		return h.info
	}
	return h.debug
}

func (h *priorityHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.pick(l).Enabled(ctx, l)
}

func (h *priorityHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.pick(r.Level).Handle(ctx, r)
}

func (h *priorityHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &priorityHandler{h.debug.WithAttrs(as), h.info.WithAttrs(as), h.warn.WithAttrs(as), h.err.WithAttrs(as)}
}

func (h *priorityHandler) WithGroup(name string) slog.Handler {
	return &priorityHandler{h.debug.WithGroup(name), h.info.WithGroup(name), h.warn.WithGroup(name), h.err.WithGroup(name)}
}
