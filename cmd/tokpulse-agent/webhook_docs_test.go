package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// Receivers wrap the examples of docs/webhook.md, unchanged, in the
// smallest HTTP server of their language's standard library: the key
// comes from the example's own loader, the headers and the raw body as
// that library gives them; 204 when the example's verify accepts, 401
// otherwise. A "now" query parameter stands in for the receiver's clock.
const (
	pythonReceiver = `
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

KEY = load_key(sys.argv[1])


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        query = parse_qs(urlparse(self.path).query)
        now = float(query["now"][0]) if "now" in query else None
        self.send_response(204 if verify(KEY, self.headers, body, now) else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
`
	nodeReceiver = `
const http = require("node:http");
const KEY = loadKey(process.argv[2]);
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const url = new URL(req.url, "http://receiver");
    const now = url.searchParams.has("now") ? Number(url.searchParams.get("now")) : undefined;
    res.statusCode = verify(KEY, req.headers, Buffer.concat(chunks), now) ? 204 : 401;
    res.end();
  });
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
`
	goReceiver = `package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	key, err := loadKey(os.Args[1])
	if err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		now := time.Now()
		if s := r.URL.Query().Get("now"); s != "" {
			n, _ := strconv.ParseInt(s, 10, 64)
			now = time.Unix(n, 0)
		}
		if verify(key, r.Header, body, now) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
}
`
)

// TestWebhookVerificationExamples runs the Python, Go and Node examples of
// docs/webhook.md as receivers of a request the agent signed, with a key
// file written as `openssl rand -hex 32 > webhook.key` writes it (a line
// break at the end; here also spaces in front). Issue 15: a receiver that
// followed the old example with the file's raw bytes rejected every
// request. Each receiver must accept the real request and refuse it with
// one byte of the body changed, without the signature, and when its
// timestamp is more than 5 minutes from the receiver's clock.
func TestWebhookVerificationExamples(t *testing.T) {
	python := testutil.Require(t, "python3")
	node := testutil.Require(t, "node")
	examples := map[string]docBlock{}
	for _, b := range docBlocks(t) {
		switch b.lang {
		case "python", "go", "js":
			if b.file != "docs/webhook.md" || examples[b.lang].text != "" {
				t.Fatalf("%s: one example per language, in docs/webhook.md, is what this test runs", b)
			}
			examples[b.lang] = b
		}
	}
	if len(examples) != 3 {
		t.Fatalf("docs/webhook.md has examples in %d languages, want python, go and js", len(examples))
	}

	// A real request, signed by the agent at start-up (its heartbeat).
	dir := t.TempDir()
	key := "7f3a9c0e5b1d4f8a2c6e0b9d3f7a1c5e9b2d6f0a4c8e2b6d0f4a8c2e6b0d4f8a"
	keyFile := filepath.Join(dir, "webhook.key")
	if err := os.WriteFile(keyFile, []byte("  "+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rc := testutil.NewReceiver(t, key)
	addr := testutil.FreeAddr(t)
	cfg := filepath.Join(dir, "agent.yaml")
	writeConfig(t, cfg, fmt.Sprintf("agent: {state_dir: %s/state}\nweb: {listen: %s}\nnotify:\n  webhooks:\n    - {name: central, url: %q, secret_file: %s}\n", dir, addr, rc.URL, keyFile))
	a := testutil.StartAgent(t, testutil.AgentOptions{Args: []string{"--config", cfg}, Addr: addr})
	testutil.Eventually(t, 20*time.Second, "the start-up heartbeat", func() bool { return len(rc.Requests()) > 0 })
	req := rc.Requests()[0]
	rc.Check(t, req) // the body meets the schema and the signature verifies with the stripped key
	a.Signal(t, syscall.SIGTERM)
	a.WaitExit(t, 10*time.Second)
	ts, err := strconv.ParseInt(req.Header.Get("X-TokPulse-Timestamp"), 10, 64)
	if err != nil {
		t.Fatalf("timestamp header: %v", err)
	}

	receivers := map[string]*exec.Cmd{}
	py := filepath.Join(dir, "receiver.py")
	writeFile(t, py, examples["python"].text+pythonReceiver)
	receivers["python"] = exec.Command(python, py, keyFile)
	js := filepath.Join(dir, "receiver.js")
	writeFile(t, js, examples["js"].text+nodeReceiver)
	receivers["node"] = exec.Command(node, js, keyFile)
	goDir := filepath.Join(dir, "goreceiver")
	writeFile(t, filepath.Join(goDir, "go.mod"), "module receiver\n\ngo 1.22\n")
	writeFile(t, filepath.Join(goDir, "verify.go"), examples["go"].text)
	writeFile(t, filepath.Join(goDir, "main.go"), goReceiver)
	goBin := filepath.Join(dir, "goreceiver.bin")
	build := exec.Command("go", "build", "-o", goBin, ".")
	build.Dir = goDir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s does not compile: %v\n%s", examples["go"], err, out)
	}
	receivers["go"] = exec.Command(goBin, keyFile)

	tampered := bytes.Clone(req.Body)
	tampered[len(tampered)/2] ^= 1
	unsigned := req.Header.Clone()
	unsigned.Del("X-TokPulse-Signature")
	for lang, cmd := range receivers {
		t.Run(lang, func(t *testing.T) {
			base := startReceiver(t, cmd)
			for _, tc := range []struct {
				name   string
				header http.Header
				body   []byte
				now    int64
				want   int
			}{
				{"as signed", req.Header, req.Body, ts, 204},
				{"4 minutes later", req.Header, req.Body, ts + 240, 204},
				{"one byte changed", req.Header, tampered, ts, 401},
				{"no signature", unsigned, req.Body, ts, 401},
				{"replayed 6 minutes later", req.Header, req.Body, ts + 360, 401},
				{"from 6 minutes ahead", req.Header, req.Body, ts - 360, 401},
			} {
				post, err := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/?now=%d", base, tc.now), bytes.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				post.Header = tc.header.Clone()
				resp, err := http.DefaultClient.Do(post)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("%s: the %s example answered %d, want %d", tc.name, lang, resp.StatusCode, tc.want)
				}
			}
		})
	}
}

// startReceiver starts cmd, which prints its port on its first line, and
// stops it (by its PID) when the test ends.
func startReceiver(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	port := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		port <- strings.TrimSpace(line)
	}()
	select {
	case p := <-port:
		if _, err := strconv.Atoi(p); err != nil {
			t.Fatalf("%s printed %q instead of its port: %s", cmd.Path, p, stderr.String())
		}
		return "http://127.0.0.1:" + p
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start: %s", cmd.Path, stderr.String())
	}
	return ""
}
