package collectors

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// unitStates are the ActiveState values systemd reports; each unit exports
// one series per state, 1 for the current one.
var unitStates = []string{"active", "activating", "deactivating", "inactive", "failed", "reloading"}

// normalizeUnit appends ".service" to a name with no unit type, as
// systemctl does.
func normalizeUnit(name string) string {
	if strings.Contains(name, ".") {
		return name
	}
	return name + ".service"
}

func validateUnits(cfg *Config, c *yamlx.Checker, path string) {
	units, path := cfg.Units, yamlx.Join(path, "units")
	seen := map[string]bool{}
	for i, u := range units {
		p := yamlx.Index(path, i)
		switch n := normalizeUnit(u); {
		case u == "" || strings.ContainsAny(u, " /\t"):
			c.Errorf(p, "%q is not a unit name; write e.g. tokpulse.service", u)
		case seen[n]:
			c.Errorf(p, "unit %s is listed twice", n)
		default:
			seen[n] = true
		}
	}
}

// UnitBus is the part of a systemd D-Bus connection the unit collector
// uses; tests inject a fake one.
type UnitBus interface {
	ListUnitsByNamesContext(ctx context.Context, units []string) ([]sddbus.UnitStatus, error)
	GetUnitTypePropertyContext(ctx context.Context, unit, unitType, property string) (*sddbus.Property, error)
	Close()
}

// DialSystemBus connects to systemd over the system D-Bus.
func DialSystemBus(ctx context.Context) (UnitBus, error) {
	c, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Units reports the state of systemd units read over D-Bus. Where there is
// no system bus (a container, a build machine), it says so once, exports
// tokpulse_systemd_up 0 and retries with a capped backoff; the rest of the
// agent is not affected.
type Units struct {
	units  []string
	dial   func(ctx context.Context) (UnitBus, error)
	logger *slog.Logger
	redact *evidence.Redactor
	// MinBackoff and MaxBackoff bound the wait between connection
	// attempts.
	MinBackoff, MaxBackoff time.Duration

	mu       sync.Mutex
	bus      UnitBus
	busDone  context.CancelFunc // ends the context bus was dialled with
	lost     chan struct{}
	warned   bool
	lastSeen []sddbus.UnitStatus
	// warm is done after the first connection attempt, whatever its
	// outcome: until then tokpulse_systemd_up says 0 for no reason.
	warm warmup

	up, state, restarts *prometheus.Desc
}

// NewUnits returns the collector of units; dial nil means DialSystemBus.
func NewUnits(units []string, dial func(context.Context) (UnitBus, error), opts Options) *Units {
	opts = opts.withDefaults()
	if dial == nil {
		dial = DialSystemBus
	}
	names := make([]string, len(units))
	for i, u := range units {
		names[i] = normalizeUnit(u)
	}
	return &Units{
		units: names, dial: dial,
		logger:     opts.Logger.With("collector", "systemd"),
		redact:     opts.Redactor,
		MinBackoff: time.Second, MaxBackoff: 5 * time.Minute,
		lost:     make(chan struct{}, 1),
		warm:     warmup{limit: 15 * time.Second},
		up:       prometheus.NewDesc("tokpulse_systemd_up", "1 when systemd answers over the system D-Bus, 0 when it cannot be reached.", nil, nil),
		state:    prometheus.NewDesc("tokpulse_systemd_unit_state", "1 for the unit's current ActiveState, 0 for the others.", []string{"unit", "state"}, nil),
		restarts: prometheus.NewDesc("tokpulse_systemd_unit_restarts_total", "Automatic restarts of the service (NRestarts) since it was last started by hand.", []string{"unit"}, nil),
	}
}

func buildUnits(cfg Config, opts Options) ([]Named, error) {
	if len(cfg.Units) == 0 {
		return nil, nil
	}
	return []Named{{Name: "systemd", Collector: NewUnits(cfg.Units, nil, opts), Key: configKey(cfg.Units), Reuse: true}}, nil
}

// Warm implements Warmer: the first connection attempt is over.
func (u *Units) Warm() bool { return u.warm.warm(time.Now()) }

// Families implements Warmer.
func (u *Units) Families() []string {
	return []string{"tokpulse_systemd_up", "tokpulse_systemd_unit_state", "tokpulse_systemd_unit_restarts_total"}
}

func (u *Units) current() UnitBus {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.bus
}

// markLost drops a connection that failed, so that Run reconnects.
func (u *Units) markLost(bus UnitBus, err error) {
	u.mu.Lock()
	if u.bus != bus {
		u.mu.Unlock()
		return
	}
	u.bus = nil
	done := u.busDone
	u.mu.Unlock()
	bus.Close()
	done()
	u.logger.Warn("Lost the systemd D-Bus connection; reconnecting", "err", err)
	select {
	case u.lost <- struct{}{}:
	default:
	}
}

// Run implements Runner: it keeps a connection to the system bus.
func (u *Units) Run(ctx context.Context) {
	u.warm.begin(time.Now())
	backoff := restartBackoff(u.MinBackoff, u.MaxBackoff)
	defer func() {
		u.mu.Lock()
		if u.bus != nil {
			u.bus.Close()
			u.busDone()
			u.bus = nil
		}
		u.mu.Unlock()
	}()
	for {
		if u.current() == nil {
			bus, done, err := u.dialWithTimeout(ctx, 10*time.Second)
			u.warm.done.Store(ctx.Err() == nil)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				// Said once at warn; every retry after that is debug, so a
				// host without systemd does not fill the log.
				wait := backoff.NextBackOff()
				if !u.warned {
					u.warned = true
					u.logger.Warn("Cannot reach systemd over the system D-Bus; unit states are not reported (tokpulse_systemd_up is 0) until it answers. Is dbus running and /run/dbus/system_bus_socket readable by the agent?", "err", err)
				} else {
					u.logger.Debug("Still cannot reach systemd over D-Bus", "err", err, "retry_in", wait)
				}
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				continue
			}
			if u.warned {
				u.logger.Info("Connected to systemd over D-Bus")
			}
			u.warned = false
			backoff.Reset()
			u.mu.Lock()
			u.bus, u.busDone = bus, done
			u.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-u.lost:
		}
	}
}

// dialWithTimeout dials the bus and gives up after timeout. godbus closes
// a connection when the context it was dialled with ends, so the timeout
// cannot be a context deadline (a deadline context cancelled after the dial
// closes the new connection at once): a timer cancels only a dial that
// hangs, and the connection lives until the returned func is called (after
// Close) or ctx ends.
func (u *Units) dialWithTimeout(ctx context.Context, timeout time.Duration) (UnitBus, context.CancelFunc, error) {
	cctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(timeout, cancel)
	bus, err := u.dial(cctx)
	if !timer.Stop() {
		// The timer fired: the dial failed for it, or a connection made at
		// the last moment is already closed.
		if bus != nil {
			bus.Close()
		}
		return nil, nil, fmt.Errorf("connecting to the system D-Bus took longer than %s: %w", timeout, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return bus, cancel, nil
}

// Update implements Collector: one D-Bus call for the states of every unit
// and one per service for its restart count.
func (u *Units) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	bus := u.current()
	if bus == nil {
		ch <- prometheus.MustNewConstMetric(u.up, prometheus.GaugeValue, 0)
		return nil
	}
	sts, err := bus.ListUnitsByNamesContext(ctx, u.units)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(u.up, prometheus.GaugeValue, 0)
		if ctx.Err() == nil {
			u.markLost(bus, err)
		}
		return nil
	}
	ch <- prometheus.MustNewConstMetric(u.up, prometheus.GaugeValue, 1)
	u.mu.Lock()
	u.lastSeen = sts
	u.mu.Unlock()
	for _, s := range sts {
		for _, st := range unitStates {
			ch <- prometheus.MustNewConstMetric(u.state, prometheus.GaugeValue, b2f(s.ActiveState == st), s.Name, st)
		}
		if !strings.HasSuffix(s.Name, ".service") || s.LoadState != "loaded" {
			continue
		}
		p, err := bus.GetUnitTypePropertyContext(ctx, s.Name, "Service", "NRestarts")
		if err != nil {
			continue // systemd older than 235 has no NRestarts
		}
		if n, ok := p.Value.Value().(uint32); ok {
			ch <- prometheus.MustNewConstMetric(u.restarts, prometheus.CounterValue, float64(n), s.Name)
		}
	}
	return nil
}

// Evidence implements evidence.Provider: each unit's load, active and sub
// state as last read.
func (u *Units) Evidence() []evidence.Section {
	u.mu.Lock()
	sts := u.lastSeen
	connected := u.bus != nil
	u.mu.Unlock()
	var out []evidence.Section
	for _, s := range sts {
		text := fmt.Sprintf("load=%s active=%s sub=%s", s.LoadState, s.ActiveState, s.SubState)
		if !connected {
			text += " (the D-Bus connection is lost; this is the last state read)"
		}
		out = append(out, evidence.Section{
			Source: "unit/" + s.Name, Kind: "unit_state",
			Title:   fmt.Sprintf("systemd unit %s: %s (%s)", s.Name, s.ActiveState, s.SubState),
			Labels:  map[string]string{"unit": s.Name},
			Entries: []evidence.Entry{{Time: time.Now(), Text: u.redact.Redact(text)}},
		})
	}
	return out
}
