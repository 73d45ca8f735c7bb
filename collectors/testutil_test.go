package collectors

import (
	"regexp"
	"testing"

	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

func mustRE(t *testing.T, s string) yamlx.Regexp {
	t.Helper()
	re, err := regexp.Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return yamlx.Regexp{Regexp: re}
}
