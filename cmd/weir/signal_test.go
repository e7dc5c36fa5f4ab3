package main_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSigtermShutsDownCleanly checks that SIGTERM ends `weir serve` with
// status 0 after syncing and sealing every log, so the next start recovers
// nothing.
func TestSigtermShutsDownCleanly(t *testing.T) {
	if runtime.GOOS == "windows" || testing.Short() {
		t.Skip("signals are tested on Unix, without -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := buildWeir(ctx, t, dir)
	data := filepath.Join(dir, "data")
	srv := startServer(ctx, t, bin, data, "", "")
	input := filepath.Join(dir, "in.txt")
	os.WriteFile(input, []byte(strings.Repeat("line\n", 5000)), 0o644)
	runWeir(ctx, t, bin, "produce", "sig", "--file", input, "--brokers", srv.kafka)

	srv.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-srv.exited:
	case <-ctx.Done():
		t.Fatal("weir serve did not exit on SIGTERM")
	}
	if code := srv.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit status %d after SIGTERM\n%s", code, srv.log())
	}
	marker := filepath.Join(data, "topics", "sig-0", "clean-shutdown")
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("no clean-shutdown marker: %v\n%s", err, srv.log())
	}
	srv = startServer(ctx, t, bin, data, srv.kafka, srv.http)
	defer srv.stop(t)
	out, _ := runWeir(ctx, t, bin, "consume", "sig", "--brokers", srv.kafka)
	if n := strings.Count(out, "line\n"); n != 5000 {
		t.Fatalf("read back %d records", n)
	}
	if l := srv.log(); strings.Contains(l, "truncated") || strings.Contains(l, "rebuilding") {
		t.Fatalf("a clean restart recovered something:\n%s", l)
	}
}

// TestServeRejectsBadConfig checks that invalid settings stop the server at
// start with one line naming the setting and a non-zero status.
func TestServeRejectsBadConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the weir binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := buildWeir(ctx, t, dir)
	cfg := filepath.Join(dir, "weir.yaml")
	os.WriteFile(cfg, []byte("kafka-adress: 1.2.3.4:1\n"), 0o644)
	for _, args := range [][]string{
		{"serve", "--data-dir", dir, "--log-level", "loud"},
		{"serve", "--data-dir", dir, "--config", cfg},
		{"serve", "--data-dir", dir, "--kafka-addr", "no-port"},
	} {
		cmd := exec.CommandContext(ctx, bin, args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("%v: err %v", args, err)
		}
		msg := strings.TrimSpace(string(out))
		if strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "weir: ") || strings.Contains(msg, "goroutine") {
			t.Fatalf("%v: want one line, got %q", args, msg)
		}
	}
}
