package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
	"github.com/tokpulse/tokpulse-agent/internal/testutil/golden"
)

func TestCheckExitsNonZeroOnEveryInvalidFile(t *testing.T) {
	// The golden errors name files as the agent package's tests see them.
	t.Chdir("../../agent")
	golden.InvalidConfigs(t, "testdata/invalid-*.yml", "go test ./agent -run TestInvalidConfigs", func(t *testing.T, f string) string {
		var out, errOut bytes.Buffer
		if code := run([]string{"check", "--config", f}, &out, &errOut); code == 0 {
			t.Fatalf("check %s exited 0; want non-zero", f)
		}
		return errOut.String()
	})
}

func TestCheckAcceptsValid(t *testing.T) {
	for _, args := range [][]string{
		{"check", "--config", "../../agent/testdata/valid-full.yml"},
		{"check", "../../agent/testdata/valid-full.yml"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 0 {
			t.Errorf("%v exited %d: %s", args, code, errOut.String())
		}
		if !strings.Contains(out.String(), "OK") {
			t.Errorf("%v printed %q; want OK", args, out.String())
		}
	}
}

func TestVersionCarriesLdflags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tpa")
	cmd := exec.Command("go", "build", "-ldflags", "-X main.version=1.2.3 -X main.commit=abc1234", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1.2.3", "abc1234", "go1."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("version output %q lacks %q", out, want)
		}
	}
}

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonLifecycle runs the real binary: it serves /metrics that promtool
// accepts, speaks sd_notify on a real socket, keeps its configuration on a
// bad SIGHUP, applies a good one, and exits 0 on SIGTERM within 10 s.
func TestDaemonLifecycle(t *testing.T) {
	promtool := testutil.Require(t, "promtool")
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	cfgPath := filepath.Join(dir, "agent.yaml")
	base := "agent:\n  interval: 1s\n  state_dir: " + dir + "/state\nweb:\n  listen: " + addr + "\n"
	writeConfig(t, cfgPath, base)

	a := testutil.StartAgent(t, testutil.AgentOptions{
		Args: []string{"--config", cfgPath},
		Env:  []string{"WATCHDOG_USEC=1000000"},
		Addr: addr,
	})
	a.WaitReady(t, 1, 15*time.Second)
	if want := `msg="Configuration loaded" file=` + cfgPath; !strings.Contains(a.Output(), want) {
		t.Errorf("the log does not name the configuration (%s):\n%s", want, a.Output())
	}

	code, body := a.Get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics status %d", code)
	}
	for _, want := range []string{
		"tokpulse_agent_build_info{",
		`node_cpu_seconds_total{cpu="0",mode="idle"}`,
		"node_memory_MemAvailable_bytes",
		`tokpulse_collector_success{collector="host"} 1`,
		"tokpulse_agent_config_last_reload_successful 1",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	checkMetrics(t, promtool, body)
	for path, want := range map[string]int{"/-/healthy": 200, "/-/ready": 200} {
		if code, _ := a.Get(t, path); code != want {
			t.Errorf("GET %s = %d, want %d", path, code, want)
		}
	}

	// The watchdog is pinged at half of WATCHDOG_USEC, and STATUS= carries a summary.
	testutil.Eventually(t, 5*time.Second, "two WATCHDOG=1 pings", func() bool { return a.Notify.Count("WATCHDOG=1") >= 2 })
	testutil.Eventually(t, 5*time.Second, "a STATUS= line", func() bool { return a.Notify.Count("STATUS=tokpulse-agent") >= 1 })

	// A broken configuration is refused and the running one stays.
	writeConfig(t, cfgPath, base+"host:\n  cpu: perhaps\n")
	a.Signal(t, syscall.SIGHUP)
	a.WaitReady(t, 2, 10*time.Second)
	if n := a.Notify.Count("RELOADING=1"); n != 1 {
		t.Errorf("RELOADING=1 sent %d times, want 1", n)
	}
	testutil.Eventually(t, 5*time.Second, "reload gauge 0", func() bool {
		_, body := a.Get(t, "/metrics")
		return strings.Contains(body, "tokpulse_agent_config_last_reload_successful 0") &&
			strings.Contains(body, "node_cpu_seconds_total")
	})
	if !strings.Contains(a.Output(), "host.cpu") {
		t.Errorf("the log does not say why the reload failed:\n%s", a.Output())
	}

	// A good configuration is applied: switching the CPU part off removes its series.
	writeConfig(t, cfgPath, base+"host:\n  cpu: false\n")
	a.Signal(t, syscall.SIGHUP)
	a.WaitReady(t, 3, 10*time.Second)
	testutil.Eventually(t, 5*time.Second, "reload applied", func() bool {
		_, body := a.Get(t, "/metrics")
		return strings.Contains(body, "tokpulse_agent_config_last_reload_successful 1") &&
			!strings.Contains(body, "node_cpu_seconds_total")
	})

	// The operator's view of the same agent, as a table and as JSON.
	out, err := exec.Command(testutil.AgentBinary(t), "status", "--url", "http://"+addr).CombinedOutput()
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^collector\s+host\s+OK\s+\d+s ago`).Match(out) || !strings.Contains(string(out), "last reload ok") {
		t.Errorf("status table:\n%s", out)
	}
	if strings.Contains(string(out), "\x1b[") {
		t.Errorf("status coloured its output although stdout is not a terminal")
	}
	out, err = exec.Command(testutil.AgentBinary(t), "status", "--url", "http://"+addr, "--json").Output()
	if err != nil || !strings.Contains(string(out), `"components"`) {
		t.Errorf("status --json: %v\n%s", err, out)
	}
	// Without --url or --config: web.listen of the system configuration
	// (here the agent's own file standing in for /etc/tokpulse-agent/agent.yaml),
	// named on stderr so that stdout stays JSON.
	code, stdout, stderr := runCLI(t, cfgPath, "status", "--json")
	if want := "Agent at http://" + addr + " (web.listen of " + cfgPath + ")\n"; code != 0 || stderr != want || !strings.HasPrefix(stdout, "{") {
		t.Errorf("status --json with the system configuration: exit %d\nstdout:\n%.200s\nstderr: %q, want %q", code, stdout, stderr, want)
	}

	start := time.Now()
	a.Signal(t, syscall.SIGTERM)
	if code := a.WaitExit(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	t.Logf("shut down in %s", time.Since(start))
	if a.Notify.Count("STOPPING=1") != 1 {
		t.Errorf("STOPPING=1 not sent; messages: %q", a.Notify.Messages())
	}
}

// nodeExporterLints returns the kinds of lint promtool raises against
// node_exporter's own exposition (its e2e-output.txt fixture), by metric
// subsystem: "node_memory_ metric names should be written in 'snake_case'
// not 'camelCase'", "node_entropy_ use base unit ...". The agent keeps
// node_exporter's names on purpose, so that existing dashboards and rules
// work; these lints, and no others, are accepted.
func nodeExporterLints(t *testing.T, promtool string) map[string]bool {
	t.Helper()
	f, err := os.Open("../../collectors/host/testdata/node_exporter/e2e-output.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = f
	out, _ := cmd.CombinedOutput()
	kinds := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if k := lintKind(strings.TrimSpace(line)); k != "" {
			kinds[k] = true
		}
	}
	if len(kinds) == 0 {
		t.Fatalf("promtool raised nothing on node_exporter's e2e-output.txt:\n%s", out)
	}
	return kinds
}

// lintKind reduces "node_netstat_Tcp_InSegs metric names should ..." to
// "node_netstat_ metric names should ..."; "" for other lines.
var lintRE = regexp.MustCompile(`^(node_[a-z]+_)\S* (.+)$`)

func lintKind(line string) string {
	m := lintRE.FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	return m[1] + " " + m[2]
}

// checkMetrics runs promtool check metrics on an exposition and fails on
// every problem it reports that node_exporter's own exposition does not.
func checkMetrics(t *testing.T, promtool, body string) {
	t.Helper()
	accepted := nodeExporterLints(t, promtool)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, _ := cmd.CombinedOutput()
	known := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case accepted[lintKind(line)]:
			known++
		default:
			t.Errorf("promtool check metrics: %s", line)
		}
	}
	if known == 0 && cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("promtool check metrics failed:\n%s", out)
	}
}

func TestRunRefusesInvalidConfig(t *testing.T) {
	// The file sets no state_dir: keep the default one (as root,
	// /var/lib/tokpulse-agent, which may hold another configuration's last
	// good copy) out of the test.
	t.Setenv("STATE_DIRECTORY", t.TempDir())
	var out, errOut bytes.Buffer
	if code := run([]string{"run", "--config", "../../agent/testdata/invalid-negative-duration.yml"}, &out, &errOut); code != 1 {
		t.Fatalf("run with an invalid config exited %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), "agent.interval") {
		t.Errorf("error output does not name the key: %q", errOut.String())
	}
}

// TestWebConfigBasicAuth proves --web.config.file reaches exporter-toolkit:
// /metrics refuses a scrape without the password and serves one with it.
func TestWebConfigBasicAuth(t *testing.T) {
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(dir, "web.yml")
	writeConfig(t, webCfg, "basic_auth_users:\n  prometheus: "+string(hash)+"\n")
	cfgPath := filepath.Join(dir, "agent.yaml")
	writeConfig(t, cfgPath, "agent:\n  state_dir: "+dir+"/state\nweb:\n  listen: "+addr+"\n")
	a := testutil.StartAgent(t, testutil.AgentOptions{Args: []string{"--config", cfgPath, "--web.config.file", webCfg}, Addr: addr})
	a.WaitReady(t, 1, 15*time.Second)

	if code, _ := a.Get(t, "/metrics"); code != 401 {
		t.Errorf("unauthenticated /metrics = %d, want 401", code)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.SetBasicAuth("prometheus", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("authenticated /metrics = %d, want 200", resp.StatusCode)
	}
	a.Signal(t, syscall.SIGTERM)
	if code := a.WaitExit(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

func TestStartFailsClearlyWhenPortIsTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	writeConfig(t, cfgPath, "agent:\n  state_dir: "+dir+"/state\nweb:\n  listen: "+l.Addr().String()+"\n")
	a := testutil.StartAgent(t, testutil.AgentOptions{Args: []string{"--config", cfgPath}})
	if code := a.WaitExit(t, 15*time.Second); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(a.Output(), "web.listen") {
		t.Errorf("the error does not tell the operator what to change:\n%s", a.Output())
	}
}
