package agent

import (
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// The sd_notify states the agent sends.
const (
	SdReady     = daemon.SdNotifyReady
	SdReloading = daemon.SdNotifyReloading
	SdStopping  = daemon.SdNotifyStopping
	SdWatchdog  = daemon.SdNotifyWatchdog
)

// Notifier reports the agent's state to its service manager.
type Notifier interface {
	// Notify sends one state line such as "READY=1" or "STATUS=...".
	Notify(state string) error
	// WatchdogInterval is WatchdogSec, or 0 when the watchdog is off.
	WatchdogInterval() time.Duration
}

// SystemdNotifier speaks the sd_notify protocol over $NOTIFY_SOCKET; outside
// systemd it does nothing.
type SystemdNotifier struct{}

// Notify implements Notifier.
func (SystemdNotifier) Notify(state string) error {
	if state == SdReloading {
		// systemd 253+ wants the monotonic time with RELOADING=1 so that it
		// can tell this reload from an older one.
		state += "\n" + daemon.SdNotifyMonotonicUsec()
	}
	_, err := daemon.SdNotify(false, state)
	return err
}

// WatchdogInterval implements Notifier.
func (SystemdNotifier) WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}
