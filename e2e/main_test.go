package e2e

import (
	"flag"
	"os"
	"strconv"
	"testing"
)

// scenarioParallelism is how many scenarios run at once unless -parallel
// is given. They spend their time waiting for `for` windows and probe
// intervals, not computing, so all seven fit together on a 2-core machine,
// whereas go test's default (GOMAXPROCS, 2 here) would run them two by two
// and more than double the suite's wall time.
const scenarioParallelism = 8

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(scenarioParallelism))
	}
	os.Exit(m.Run())
}
