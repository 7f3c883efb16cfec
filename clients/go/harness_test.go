package txloop_test

// The integration tests' plumbing: a real etcd and real `txloop sidecar` processes, started once
// for the package (the first integration test starts them, TestMain stops them).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopAll()
	os.Exit(code)
}

var (
	procsMu sync.Mutex
	procs   []*proc
	tempDir string
)

// proc is a child process of the tests, with the tail of its output for failure messages.
type proc struct {
	name   string
	cmd    *exec.Cmd
	output *tail
	done   chan struct{}
}

func stopAll() {
	procsMu.Lock()
	defer procsMu.Unlock()
	// Sidecars first (SIGTERM: they resign and close), etcd last.
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
	procs = nil
	if tempDir != "" {
		_ = os.RemoveAll(tempDir)
	}
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail keeps the last bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > 16<<10 {
		t.buf = t.buf[len(t.buf)-16<<10:]
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// start runs a child process whose stdout goes to stdout (nil: to its tail) and stderr to its tail.
func start(name string, stdout io.Writer, bin string, args []string, env []string) (*proc, error) {
	p := &proc{name: name, cmd: exec.Command(bin, args...), output: &tail{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stderr = p.output
	if stdout != nil {
		p.cmd.Stdout = stdout
	} else {
		p.cmd.Stdout = p.output
	}
	if err := startChild(p.cmd); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	procsMu.Lock()
	procs = append(procs, p)
	procsMu.Unlock()
	return p, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// etcdBinary is $TXLOOP_ETCD_BIN, else etcd on PATH, else /usr/bin/etcd (as src/etcd/launcher.ts).
func etcdBinary() (string, error) {
	if bin := os.Getenv("TXLOOP_ETCD_BIN"); bin != "" {
		if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("TXLOOP_ETCD_BIN=%s is not an executable file", bin)
		}
		return bin, nil
	}
	if bin, err := exec.LookPath("etcd"); err == nil {
		return bin, nil
	}
	if st, err := os.Stat("/usr/bin/etcd"); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return "/usr/bin/etcd", nil
	}
	return "", errors.New("no etcd server binary (looked at $TXLOOP_ETCD_BIN, etcd on PATH, /usr/bin/etcd): run scripts/ensure-etcd.sh or set TXLOOP_ETCD_BIN")
}

// etcdEnv is the environment without ETCD_* variables (etcd 3.4 refuses one that shadows a flag).
func etcdEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") || strings.HasPrefix(kv, "ETCD_UNSUPPORTED_ARCH=") {
			env = append(env, kv)
		}
	}
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "ppc64le" && os.Getenv("ETCD_UNSUPPORTED_ARCH") == "" {
		env = append(env, "ETCD_UNSUPPORTED_ARCH="+runtime.GOARCH)
	}
	return env
}

// startEtcd runs one etcd on free loopback ports, with the flags txloop's own launcher uses.
func startEtcd(dir string) (string, error) {
	bin, err := etcdBinary()
	if err != nil {
		return "", err
	}
	var last error
	for try := 0; try < 3; try++ {
		clientPort, err := freePort()
		if err != nil {
			return "", err
		}
		peerPort, err := freePort()
		if err != nil {
			return "", err
		}
		client := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
		peer := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
		dataDir := filepath.Join(dir, fmt.Sprintf("etcd-%d", try))
		p, err := start("etcd", nil, bin, []string{
			"--name", "go-client-test", "--data-dir", dataDir,
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", "go-client-test=" + peer, "--initial-cluster-state", "new",
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--logger", "zap", "--log-outputs", "stderr", "--log-level", "error",
		}, etcdEnv())
		if err != nil {
			return "", err
		}
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) && !p.exited() {
			if healthy(client) {
				return client, nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		p.stop()
		last = fmt.Errorf("etcd at %s did not become healthy: %s", client, p.output.String())
		if !strings.Contains(p.output.String(), "address already in use") {
			break
		}
	}
	return "", last
}

func healthy(clientURL string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer res.Body.Close()
	var h struct{ Health string }
	return res.StatusCode == 200 && json.NewDecoder(res.Body).Decode(&h) == nil && h.Health == "true"
}

// sidecarCLI is the Node build's CLI: $TXLOOP_SIDECAR_CLI, else <repo>/dist/cli/main.js.
func sidecarCLI() (string, error) {
	if cli := os.Getenv("TXLOOP_SIDECAR_CLI"); cli != "" {
		return cli, nil
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	cli := filepath.Join(root, "dist", "cli", "main.js")
	if _, err := os.Stat(cli); err != nil {
		return "", fmt.Errorf("%s is missing: build txloop first (npm run build at %s; npm test builds it too)", cli, root)
	}
	return cli, nil
}

func nodeBinary() (string, error) {
	if bin := os.Getenv("TXLOOP_NODE_BIN"); bin != "" {
		return bin, nil
	}
	bin, err := exec.LookPath("node")
	if err != nil {
		return "", errors.New("node (>= 20) is not on PATH (or set TXLOOP_NODE_BIN)")
	}
	return bin, nil
}

// readyLine waits for the sidecar's {"event":"ready","url":…} line on its stdout.
type readyLine struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan string
	once  sync.Once
}

func (r *readyLine) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf.Write(b)
	sc := bufio.NewScanner(bytes.NewReader(r.buf.Bytes()))
	for sc.Scan() {
		var e struct{ Event, URL string }
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Event == "ready" && e.URL != "" {
			r.once.Do(func() { r.ready <- e.URL })
		}
	}
	return len(b), nil
}

type sidecarSpec struct {
	app, endpoint, namespace, serviceURL, token string
	resources                                   map[string]interface{}
}

// startSidecar runs `node dist/cli/main.js sidecar …` and returns its URL once it printed its ready line.
func startSidecar(dir string, s sidecarSpec) (string, error) {
	node, err := nodeBinary()
	if err != nil {
		return "", err
	}
	cli, err := sidecarCLI()
	if err != nil {
		return "", err
	}
	// YAML is a superset of JSON: the resources file is written as JSON.
	resources, err := json.Marshal(s.resources)
	if err != nil {
		return "", err
	}
	file := filepath.Join(dir, s.app+"-resources.yaml")
	if err := os.WriteFile(file, resources, 0o600); err != nil {
		return "", err
	}
	args := []string{cli, "sidecar", "--app", s.app, "--endpoints", s.endpoint, "--namespace", s.namespace,
		"--listen", "127.0.0.1:0", "--service-url", s.serviceURL, "--resources", file, "--log-level", "warn"}
	if s.token != "" {
		tokenFile := filepath.Join(dir, s.app+"-token")
		if err := os.WriteFile(tokenFile, []byte(s.token+"\n"), 0o600); err != nil {
			return "", err
		}
		args = append(args, "--token-file", tokenFile)
	}
	env := []string{}
	for _, kv := range os.Environ() {
		// The sidecar's own settings come from the flags only.
		if !strings.HasPrefix(kv, "TXLOOP_") {
			env = append(env, kv)
		}
	}
	ready := &readyLine{ready: make(chan string, 1)}
	p, err := start("sidecar "+s.app, ready, node, args, env)
	if err != nil {
		return "", err
	}
	select {
	case url := <-ready.ready:
		return url, nil
	case <-p.done:
		return "", fmt.Errorf("sidecar %s exited before it was ready: %s", s.app, p.output.String())
	case <-time.After(30 * time.Second):
		p.stop()
		return "", fmt.Errorf("sidecar %s not ready within 30s: %s", s.app, p.output.String())
	}
}
