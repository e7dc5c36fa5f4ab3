package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestProduceKillRestartConsume drives the real binary the way a user does:
// produce a file, kill -9 the broker, restart it on the same directory and
// read every record back in order.
func TestProduceKillRestartConsume(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("kill -9 and restart semantics are tested on Unix only")
	}
	if testing.Short() {
		t.Skip("builds and runs the weir binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := buildWeir(ctx, t, dir)
	dataDir := filepath.Join(dir, "data")

	srv := startServer(ctx, t, bin, dataDir, "", "")
	const records = 20000
	input := filepath.Join(dir, "input.txt")
	var want bytes.Buffer
	for i := range records {
		fmt.Fprintf(&want, "record %05d %s\n", i, strings.Repeat("x", i%97))
	}
	if err := os.WriteFile(input, want.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut := runWeir(ctx, t, bin, "produce", "durable", "--file", input, "--brokers", srv.kafka)
	if out != "" || !strings.HasPrefix(errOut, fmt.Sprintf("produced %d records", records)) {
		t.Fatalf("produce: stdout %q, stderr %q", out, errOut)
	}

	srv.kill(t)
	srv = startServer(ctx, t, bin, dataDir, srv.kafka, srv.http)
	defer srv.stop(t)

	out, _ = runWeir(ctx, t, bin, "consume", "durable", "--format", "json", "--brokers", srv.kafka)
	lines := bufio.NewScanner(strings.NewReader(out))
	wantLines := bufio.NewScanner(&want)
	n := 0
	for lines.Scan() {
		var rec struct {
			Partition int32  `json:"partition"`
			Offset    int64  `json:"offset"`
			Value     string `json:"value"`
		}
		if err := json.Unmarshal(lines.Bytes(), &rec); err != nil {
			t.Fatalf("line %d: %v: %q", n, err, lines.Text())
		}
		if !wantLines.Scan() {
			t.Fatalf("more records than produced: %q", lines.Text())
		}
		if rec.Partition != 0 || rec.Offset != int64(n) || rec.Value != wantLines.Text() {
			t.Fatalf("record %d: partition %d offset %d value %q, want offset %d value %q", n, rec.Partition, rec.Offset, rec.Value, n, wantLines.Text())
		}
		n++
	}
	if n != records {
		t.Fatalf("consumed %d records after the restart, want %d", n, records)
	}
}

func buildWeir(ctx context.Context, t *testing.T, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "weir")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runWeir(ctx context.Context, t *testing.T, bin string, args ...string) (string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "WEIR_BROKERS=")
	if err := cmd.Run(); err != nil {
		t.Fatalf("weir %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

type server struct {
	cmd         *exec.Cmd
	kafka, http string
	exited      chan struct{}
	mu          sync.Mutex
	output      bytes.Buffer
}

func (s *server) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.output.Write(p)
}

func (s *server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.output.String()
}

// freeAddr finds a port that is free now. The server binds it a moment
// later; serve's own port 0 cannot be used because the test could not learn
// the port from outside.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer runs `weir serve` and waits until /readyz answers 200. With
// empty addresses it picks free ports, and picks again if another process
// took one in between.
func startServer(ctx context.Context, t *testing.T, bin, dataDir, kafka, httpAddr string) *server {
	t.Helper()
	pick := kafka == ""
	for attempt := 0; ; attempt++ {
		if pick {
			kafka, httpAddr = freeAddr(t), freeAddr(t)
		}
		s := &server{kafka: kafka, http: httpAddr, exited: make(chan struct{})}
		s.cmd = exec.Command(bin, "serve", "--data-dir", dataDir, "--kafka-addr", kafka, "--http-addr", httpAddr, "--log-level", "warn")
		s.cmd.Stdout, s.cmd.Stderr = s, s
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			s.cmd.Wait()
			close(s.exited)
		}()
		err := s.waitReady(ctx)
		if err == nil {
			return s
		}
		s.kill(t)
		if pick && attempt < 3 && strings.Contains(s.log(), "address already in use") {
			continue
		}
		t.Fatalf("weir serve: %v\n%s", err, s.log())
	}
}

func (s *server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.http+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// kill is kill -9: no shutdown code runs.
func (s *server) kill(t *testing.T) {
	t.Helper()
	s.cmd.Process.Kill()
	<-s.exited
}

func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.kill(t)
		t.Errorf("weir serve did not stop on SIGINT\n%s", s.log())
	}
}
