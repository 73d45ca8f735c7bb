package actions

import (
	"os"
	"testing"

	"github.com/tokpulse/tokpulse-agent/internal/reaper"
)

func TestMain(m *testing.M) {
	// Commands run under a reaper, which is this test binary started again.
	reaper.Main()
	os.Exit(m.Run())
}
