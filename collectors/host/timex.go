package host

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

const (
	timeError    = 5      // adjtimex: clock not synchronised (TIME_ERROR)
	staNano      = 0x2000 // timex.status: offsets in ns, not µs
	ppm16frac    = 1000000.0 * 65536.0
	microSeconds = 1e6
	nanoSeconds  = 1e9
)

// updateTimex reports the kernel clock discipline (adjtimex(2)), read-only:
// node-mixin's NodeClockNotSynchronising and NodeClockSkewDetected read
// node_timex_sync_status and node_timex_offset_seconds.
func (c *Collector) updateTimex(_ context.Context, ch chan<- prometheus.Metric) error {
	var tx unix.Timex
	status, err := unix.Adjtimex(&tx)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("%w: adjtimex: %v", ErrNoData, err)
		}
		return fmt.Errorf("adjtimex: %w", err)
	}
	sync := 1.0
	if status == timeError {
		sync = 0
	}
	div := microSeconds
	if tx.Status&staNano != 0 {
		div = nanoSeconds
	}
	g := func(name, help string, v float64) {
		ch <- c.labels.MustNew(c.desc("node_timex_"+name, help), prometheus.GaugeValue, v)
	}
	n := func(name, help string, v float64) {
		ch <- c.labels.MustNew(c.desc("node_timex_"+name, help), prometheus.CounterValue, v)
	}
	g("sync_status", "Is clock synchronized to a reliable server (1 = yes, 0 = no).", sync)
	g("offset_seconds", "Time offset in between local system and reference clock.", float64(tx.Offset)/div)
	g("frequency_adjustment_ratio", "Local clock frequency adjustment.", 1+float64(tx.Freq)/ppm16frac)
	g("maxerror_seconds", "Maximum error in seconds.", float64(tx.Maxerror)/microSeconds)
	g("estimated_error_seconds", "Estimated error in seconds.", float64(tx.Esterror)/microSeconds)
	g("status", "Value of the status array bits.", float64(tx.Status))
	g("loop_time_constant", "Phase-locked loop time constant.", float64(tx.Constant))
	g("tick_seconds", "Seconds between clock ticks.", float64(tx.Tick)/microSeconds)
	g("pps_frequency_hertz", "Pulse per second frequency.", float64(tx.Ppsfreq)/ppm16frac)
	g("pps_jitter_seconds", "Pulse per second jitter.", float64(tx.Jitter)/div)
	g("pps_shift_seconds", "Pulse per second interval duration.", float64(tx.Shift))
	g("pps_stability_hertz", "Pulse per second stability, average of recent frequency changes.", float64(tx.Stabil)/ppm16frac)
	n("pps_jitter_total", "Pulse per second count of jitter limit exceeded events.", float64(tx.Jitcnt))
	n("pps_calibration_total", "Pulse per second count of calibration intervals.", float64(tx.Calcnt))
	n("pps_error_total", "Pulse per second count of calibration errors.", float64(tx.Errcnt))
	n("pps_stability_exceeded_total", "Pulse per second count of stability limit exceeded events.", float64(tx.Stbcnt))
	g("tai_offset_seconds", "International Atomic Time (TAI) offset.", float64(tx.Tai))
	return nil
}
