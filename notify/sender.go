package notify

import (
	"context"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// sender delivers one output's queue in order.
type sender struct {
	m      *Manager
	out    Output
	wake   <-chan struct{}
	cfg    Config
	logger *slog.Logger

	// isolate is the last seq of a batch refused for good: events up to it
	// are sent one at a time so that only the offending one is set aside.
	isolate  uint64
	failures int
}

// run is the retry stage: it delivers batches until quit, retrying a
// failed one after a capped exponential backoff (or the receiver's
// Retry-After), and after drain makes one last attempt at what is queued.
func (s *sender) run(ctx context.Context, drain, quit <-chan struct{}) {
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     s.cfg.Retry.InitialInterval.D(),
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         s.cfg.Retry.MaxInterval.D(),
	}
	bo.Reset()
	var resendC <-chan time.Time
	rs, isResender := s.out.(resender)
	if isResender {
		t := time.NewTicker(rs.ResendInterval())
		defer t.Stop()
		resendC = t.C
	}
	l := &loop{ctx: ctx, drain: drain, quit: quit}
	for l.poll() {
		batch, wait, err := s.next(l.draining)
		if err != nil {
			s.logger.Error("Reading the outbox failed", "err", err)
			wait = time.Second
		}
		if len(batch) == 0 {
			if l.draining {
				return
			}
			goOn, resendDue := l.idle(wait, s.wake, resendC)
			if !goOn {
				return
			}
			if resendDue {
				s.resend(ctx, rs)
			}
			continue
		}
		if !s.settle(l, bo, s.send(ctx, batch)) {
			return
		}
	}
}

// settle decides what follows a delivery attempt that returned err: go
// on at once (success, or a refusal for good, which send has set aside),
// stop (cancelled, or failed while draining), or back off and retry.
func (s *sender) settle(l *loop, bo *backoff.ExponentialBackOff, err error) bool {
	switch {
	case err == nil:
		bo.Reset()
		return true
	case l.ctx.Err() != nil:
		return false
	case permanent(err):
		return true
	case l.draining:
		return false
	}
	return l.sleep(max(bo.NextBackOff(), retryAfterOf(err)))
}

// loop is one sender goroutine's view of its generation's signals: ctx
// (cancelled last), drain (shutdown: one last attempt, then exit) and quit
// (reload: exit after the request in flight).
type loop struct {
	ctx      context.Context
	drain    <-chan struct{}
	quit     <-chan struct{}
	draining bool
}

// poll reports false once quit is closed, and notes a drain request.
func (l *loop) poll() bool {
	select {
	case <-l.quit:
		return false
	default:
	}
	if !l.draining {
		select {
		case <-l.drain:
			l.draining = true
		default:
		}
	}
	return true
}

// idle waits, with nothing to send, for a wake-up, the end of wait (none
// when wait is 0: a held event's group_wait), the resend ticker, or a
// signal. goOn is false when the sender must stop.
func (l *loop) idle(wait time.Duration, wake <-chan struct{}, resend <-chan time.Time) (goOn, resendDue bool) {
	var timerC <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timerC = t.C
	}
	select {
	case <-l.ctx.Done():
		return false, false
	case <-l.quit:
		return false, false
	case <-l.drain:
		l.draining = true
	case <-wake:
	case <-timerC:
	case <-resend:
		return true, true
	}
	return true, false
}

// sleep is the backoff before a retry; a drain request cuts it short for
// one last attempt before shutdown. It is false when the sender must stop.
func (l *loop) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.ctx.Done():
		return false
	case <-l.quit:
		return false
	case <-l.drain:
		l.draining = true
	case <-t.C:
	}
	return true
}

func (s *sender) send(ctx context.Context, batch []Stored) error {
	events := make([]alert.Event, len(batch))
	seqs := make([]uint64, len(batch))
	for i, st := range batch {
		events[i], seqs[i] = st.Event, st.Seq
	}
	met := s.m.opts.Metrics
	name := s.out.Name()
	err := s.out.Send(ctx, events)
	now := s.m.opts.Now()
	if err == nil {
		if err := s.m.box.ack(name, seqs); err != nil {
			// The receiver has them; a later resend is a duplicate its
			// de-duplication absorbs.
			s.logger.Error("Recording a delivery in the outbox failed", "err", err)
			return err
		}
		met.notifications.WithLabelValues(name, ResultSuccess).Add(float64(len(batch)))
		for _, e := range events {
			met.latency.WithLabelValues(name).Observe(max(now.Sub(e.CreatedAt).Seconds(), 0))
		}
		if s.failures > 0 {
			s.logger.Info("Output accepts events again", "failed_attempts", s.failures)
		}
		s.failures = 0
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	if permanent(err) {
		if len(batch) > 1 {
			s.isolate = batch[len(batch)-1].Seq
			s.logger.Warn("Output refused a batch; resending its events one by one to set aside only the refused ones", "events", len(batch), "err", err)
			return err
		}
		if derr := s.m.box.deadLetter(name, batch, err.Error(), now); derr != nil {
			s.logger.Error("Setting aside a refused event failed", "err", derr)
			return derr
		}
		met.notifications.WithLabelValues(name, ResultDeadLetter).Add(float64(len(batch)))
		e := events[0]
		s.logger.Error("Output refused an event for good; it is kept aside as a dead letter (see /api/v1/outbox) and not retried",
			"id", e.ID, "kind", e.Kind, "alertname", e.AlertName, "severity", e.Severity, "err", err)
		return err
	}
	met.notifications.WithLabelValues(name, ResultRetry).Add(float64(len(batch)))
	s.failures++
	level := slog.LevelWarn
	if s.failures > 1 && s.failures%10 != 0 {
		level = slog.LevelDebug // one warning per ten attempts is enough
	}
	s.logger.Log(ctx, level, "Delivery failed; will retry", "events", len(batch), "attempt", s.failures, "err", err)
	return err
}
