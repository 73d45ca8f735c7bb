package packaging

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// testArm64UnderQemu runs the binary of the arm64 .deb under
// qemu-aarch64-static, the user-mode emulator (no binfmt_misc needed: the
// emulator is the program run): "version" names the package's version and
// arm64, "check" passes the shipped configuration, and "run" serves
// /metrics with the host collector's series until SIGTERM ends it cleanly.
func testArm64UnderQemu(t *testing.T, deb, version string) {
	qemu := testutil.Require(t, "qemu-aarch64-static")
	dir := t.TempDir()
	run(t, "", nil, "dpkg-deb", "-x", deb, dir)
	bin := filepath.Join(dir, "usr/bin/tokpulse-agent")

	out := run(t, "", nil, qemu, bin, "version")
	if !strings.HasPrefix(out, "tokpulse-agent "+version+" ") || !strings.Contains(out, "linux/arm64") {
		t.Errorf("arm64 version under qemu: %q, want %s and linux/arm64", out, version)
	}
	out = run(t, "", nil, qemu, bin, "check", "--config", filepath.Join(dir, "etc/tokpulse-agent/agent.yaml"))
	if !strings.Contains(out, "OK") {
		t.Errorf("arm64 check of the shipped agent.yaml under qemu: %s", out)
	}

	addr := testutil.FreeAddr(t)
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte("agent:\n  interval: 1s\n  state_dir: "+filepath.Join(dir, "state")+"\nweb:\n  listen: "+addr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var output testutil.SyncBuffer
	cmd := exec.Command(qemu, bin, "run", "--config", cfg)
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	defer func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill() // the emulator this test started, by PID
			<-done
		}
		if t.Failed() {
			t.Logf("agent output:\n%s", output.String())
		}
	}()

	var body string
	testutil.Eventually(t, 60*time.Second, "/metrics of the arm64 agent under qemu", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK && strings.Contains(body, `tokpulse_collector_success{collector="host"} 1`)
	})
	for _, want := range []string{`version="` + version + `"`, "node_memory_MemAvailable_bytes "} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics of the arm64 agent lacks %s", want)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("arm64 agent after SIGTERM: %v", waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("arm64 agent did not stop within 30 s of SIGTERM")
	}
}
