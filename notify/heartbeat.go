package notify

import (
	"context"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// The heartbeat stage: one event every notify.heartbeat, so that the
// central side can tell a silent host from a healthy one.

// heartbeats queues a heartbeat now and every interval; a new heartbeat
// replaces undelivered older ones (only the latest says anything).
func (m *Manager) heartbeats(ctx context.Context, drain, quit <-chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := m.heartbeat(); err != nil {
			m.logger.Error("Queuing a heartbeat failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-drain:
			return
		case <-quit:
			return
		case <-t.C:
		}
	}
}

func (m *Manager) heartbeat() error {
	now := m.opts.Now().UTC()
	ev := alert.Event{
		ID: alert.HashID(m.opts.Host, string(alert.KindHeartbeat), now.Format(time.RFC3339Nano)), Kind: alert.KindHeartbeat, Status: "ok",
		Host: m.opts.Host, AgentVersion: m.opts.Version, CreatedAt: now,
	}
	names := m.outputNames()
	dropped, err := m.box.replace(names, ev)
	m.reportDrops(dropped)
	m.wakeAll()
	return err
}
