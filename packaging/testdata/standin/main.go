// Command standin stands in for TokPulse (tokpulse.service) in the booted
// container of packaging/actions_test.go: it serves /health on
// 127.0.0.1:3000, answering 503 from the moment the file /run/tokpulse-fail
// exists (which it then removes) until the process is restarted, and 200
// otherwise. Each answer says how many times the service has started.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

const (
	failFile   = "/run/tokpulse-fail"
	startsFile = "/run/tokpulse-starts"
)

func main() {
	b, _ := os.ReadFile(startsFile)
	starts, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	starts++
	if err := os.WriteFile(startsFile, []byte(strconv.Itoa(starts)), 0o644); err != nil {
		log.Fatal(err)
	}
	var failing atomic.Bool
	http.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		// Failing is a state of this process: only a restart ends it.
		if os.Remove(failFile) == nil {
			failing.Store(true)
		}
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintf(w, "starts %d\n", starts)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:3000", nil))
}
