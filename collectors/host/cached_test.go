package host

import (
	"testing"

	"github.com/tokpulse/tokpulse-agent/internal/testutil/golden"
)

// TestOwnFixtureGoldenCached gathers the fixture host three times and
// checks each exposition against the golden file: from the second gather
// on, the label pairs come from the cache.
func TestOwnFixtureGoldenCached(t *testing.T) {
	c, _ := ownCollector(t, ownConfig())
	for i := range 3 {
		mfs := gather(t, c)
		delete(mfs, "node_scrape_collector_duration_seconds")
		golden.Compare(t, "testdata/own/metrics.golden", exposition(t, mfs), "go test ./collectors/host -run OwnFixture")
		if i == 0 && c.labels.Len() == 0 {
			t.Fatal("the first gather cached no label pairs")
		}
	}
}
