package collectors

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// TestUnitsWithoutBus runs the collector where there is no system bus: it
// must say so once, export tokpulse_systemd_up 0, keep
// retrying, and stop when asked.
func TestUnitsWithoutBus(t *testing.T) {
	// A socket path that exists nowhere, so that the test means the same on
	// a machine that does run a system bus.
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+t.TempDir()+"/no_bus_socket")
	var logs testutil.SyncBuffer
	var mu sync.Mutex
	attempts := 0
	dial := func(ctx context.Context) (UnitBus, error) {
		mu.Lock()
		attempts++
		mu.Unlock()
		return DialSystemBus(ctx)
	}
	u := NewUnits([]string{"tokpulse", "redis-server.service"}, dial, Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	u.MinBackoff, u.MaxBackoff = time.Millisecond, 4*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	testutil.Eventually(t, 20*time.Second, "several connection attempts", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return attempts >= 5
	})
	got := collect(t, u)
	if v, ok := got["tokpulse_systemd_up"]; !ok || v != 0 {
		t.Errorf("tokpulse_systemd_up = %v (present %v), want 0", v, ok)
	}
	if len(got) != 1 {
		t.Errorf("exported %v, want only tokpulse_systemd_up", got)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings, want exactly 1:\n%s", n, logs.String())
	}
}

// fakeBus answers like systemd for a fixed set of units.
type fakeBus struct {
	mu       sync.Mutex
	units    map[string]sddbus.UnitStatus
	restarts map[string]uint32
	broken   bool
	closed   bool
}

func (f *fakeBus) ListUnitsByNamesContext(_ context.Context, names []string) ([]sddbus.UnitStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.broken {
		return nil, errors.New("connection reset")
	}
	var out []sddbus.UnitStatus
	for _, n := range names {
		s, ok := f.units[n]
		if !ok {
			s = sddbus.UnitStatus{Name: n, LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}
		}
		out = append(out, s)
	}
	return out, nil
}

func (f *fakeBus) GetUnitTypePropertyContext(_ context.Context, unit, unitType, prop string) (*sddbus.Property, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if unitType != "Service" || prop != "NRestarts" {
		return nil, errors.New("unexpected property")
	}
	return &sddbus.Property{Name: prop, Value: dbus.MakeVariant(f.restarts[unit])}, nil
}

func (f *fakeBus) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
}

func TestUnitsStates(t *testing.T) {
	var mu sync.Mutex
	var buses []*fakeBus
	dial := func(context.Context) (UnitBus, error) {
		b := &fakeBus{
			units: map[string]sddbus.UnitStatus{
				"tokpulse.service":     {Name: "tokpulse.service", LoadState: "loaded", ActiveState: "failed", SubState: "failed"},
				"redis-server.service": {Name: "redis-server.service", LoadState: "loaded", ActiveState: "active", SubState: "running"},
			},
			restarts: map[string]uint32{"tokpulse.service": 5},
		}
		mu.Lock()
		buses = append(buses, b)
		mu.Unlock()
		return b, nil
	}
	u := NewUnits([]string{"tokpulse.service", "redis-server", "postgresql.service"}, dial, Options{})
	u.MinBackoff = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go u.Run(ctx)
	testutil.Eventually(t, 20*time.Second, "the connection", func() bool { return u.current() != nil })
	got := collect(t, u)
	for k, want := range map[string]float64{
		`tokpulse_systemd_up`: 1,
		`tokpulse_systemd_unit_state{state="failed",unit="tokpulse.service"}`:     1,
		`tokpulse_systemd_unit_state{state="active",unit="tokpulse.service"}`:     0,
		`tokpulse_systemd_unit_state{state="active",unit="redis-server.service"}`: 1,
		`tokpulse_systemd_unit_state{state="inactive",unit="postgresql.service"}`: 1,
		`tokpulse_systemd_unit_restarts_total{unit="tokpulse.service"}`:           5,
		`tokpulse_systemd_unit_restarts_total{unit="redis-server.service"}`:       0,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
	if _, ok := got[`tokpulse_systemd_unit_restarts_total{unit="postgresql.service"}`]; ok {
		t.Error("restarts reported for a unit that is not loaded")
	}
	ev := u.Evidence()
	if len(ev) != 3 || ev[0].Labels["unit"] != "tokpulse.service" || !strings.Contains(ev[0].Title, "failed") {
		t.Errorf("evidence = %+v", ev)
	}

	// A broken connection is dropped, reported as down, and replaced.
	mu.Lock()
	first := buses[0]
	mu.Unlock()
	first.mu.Lock()
	first.broken = true
	first.mu.Unlock()
	if v := collect(t, u)["tokpulse_systemd_up"]; v != 0 {
		t.Errorf("tokpulse_systemd_up = %v on a broken connection, want 0", v)
	}
	testutil.Eventually(t, 20*time.Second, "a new connection", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(buses) == 2 && u.current() == UnitBus(buses[1])
	})
	if v := collect(t, u)["tokpulse_systemd_up"]; v != 1 {
		t.Errorf("tokpulse_systemd_up = %v after reconnecting, want 1", v)
	}
	first.mu.Lock()
	defer first.mu.Unlock()
	if !first.closed {
		t.Error("the broken connection was not closed")
	}
}

// TestUnitsConnectionOutlivesDial guards the connection's lifetime: godbus
// closes a connection when the context it was dialled with ends, so that
// context must stay alive after the dial returns (a dial timeout as a
// context deadline closed every connection at once, seen against the
// systemd of packaging's TestUnitsInContainer). It ends when Run does.
func TestUnitsConnectionOutlivesDial(t *testing.T) {
	var mu sync.Mutex
	var dialCtx context.Context
	dial := func(ctx context.Context) (UnitBus, error) {
		mu.Lock()
		dialCtx = ctx
		mu.Unlock()
		return &fakeBus{}, nil
	}
	u := NewUnits([]string{"tokpulse"}, dial, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	testutil.Eventually(t, 20*time.Second, "the connection", func() bool { return u.current() != nil })
	mu.Lock()
	dctx := dialCtx
	mu.Unlock()
	if err := dctx.Err(); err != nil {
		t.Fatalf("the context the connection was dialled with ended after the dial: %v", err)
	}
	cancel()
	<-done
	if dctx.Err() == nil {
		t.Error("the connection's context outlived Run")
	}
}
