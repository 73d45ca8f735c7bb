package notify

import "time"

// Check builds every output of cfg as New would, reading each secret, CA,
// certificate and template file, and discards them. `tokpulse-agent check`
// calls it so that it refuses exactly what would stop the agent from
// starting.
func Check(cfg Config) error {
	m := &Manager{opts: Options{Now: time.Now}}
	_, err := m.buildOutputs(cfg)
	return err
}
