package notify

import (
	"context"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// The resend stage: outputs that forget alerts not re-posted (Alertmanager)
// hear about what fires again and again.

// resender is implemented by outputs that must hear about active alerts
// again and again (Alertmanager forgets an alert that is not re-posted).
type resender interface {
	ResendInterval() time.Duration
	Resend(ctx context.Context, active []alert.Event) error
}

// resend re-posts what fires to an output that needs it (when its queue is
// empty, so that nothing older overtakes a queued event).
func (s *sender) resend(ctx context.Context, rs resender) {
	if s.m.opts.Firing == nil {
		return
	}
	active := s.m.opts.Firing()
	if len(active) == 0 {
		return
	}
	for i := range active {
		active[i].Evidence = nil
	}
	if err := rs.Resend(ctx, active); err != nil && ctx.Err() == nil {
		s.logger.Warn("Re-sending active alerts failed", "alerts", len(active), "err", err)
	}
}
