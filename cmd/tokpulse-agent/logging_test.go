package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestPriorityPrefixes: under journald each line carries its sd-daemon(3)
// priority, attributes and groups included.
func TestPriorityPrefixes(t *testing.T) {
	var b bytes.Buffer
	level := new(slog.LevelVar)
	level.Set(slog.LevelDebug)
	hopts := &slog.HandlerOptions{Level: level}
	h := func(prefix string) slog.Handler { return slog.NewTextHandler(prefixWriter{&b, prefix}, hopts) }
	l := slog.New(&priorityHandler{debug: h("<7>"), info: h("<6>"), warn: h("<4>"), err: h("<3>")}).With("component", "rules")
	l.Debug("d")
	l.Info("i")
	l.Warn("w")
	l.Error("e", "err", "boom")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{"<7>", "<6>", "<4>", "<3>"}
	if len(lines) != len(want) {
		t.Fatalf("lines %q", lines)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]+"time=") || !strings.Contains(l, "component=rules") {
			t.Errorf("line %d %q: want prefix %s and the logger's attributes", i, l, want[i])
		}
	}
}
