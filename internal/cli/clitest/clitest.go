// Package clitest runs the weir command tree inside a test, the way a user
// runs the binary, and returns what it printed and its exit status.
package clitest

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/internal/cli"
)

// Result is one command's outcome.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run executes `weir args...` with stdin, bounded by a generous deadline so
// that a hang fails the test instead of the whole run.
func Run(t testing.TB, stdin string, args ...string) Result {
	t.Helper()
	return RunReader(t, strings.NewReader(stdin), args...)
}

// RunReader is Run with any stdin.
func RunReader(t testing.TB, stdin io.Reader, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := cli.Execute(ctx, args, stdin, &stdout, &stderr)
	if ctx.Err() != nil {
		t.Fatalf("weir %s: did not finish within the test deadline", strings.Join(args, " "))
	}
	return Result{Stdout: stdout.String(), Stderr: stderr.String(), Code: code}
}

// MustRun is Run that fails the test unless the command succeeds.
func MustRun(t testing.TB, stdin string, args ...string) Result {
	t.Helper()
	r := Run(t, stdin, args...)
	if r.Code != 0 {
		t.Fatalf("weir %s: exit %d, stderr: %s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return r
}

// Fails runs a command that must fail and returns its one-line error.
func Fails(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	r := Run(t, stdin, args...)
	if r.Code == 0 {
		t.Fatalf("weir %s: succeeded, want a failure; stdout: %s", strings.Join(args, " "), r.Stdout)
	}
	if !strings.HasPrefix(r.Stderr, "weir: ") || strings.Count(r.Stderr, "\n") != 1 {
		t.Fatalf("weir %s: stderr is not one `weir: ` line: %q", strings.Join(args, " "), r.Stderr)
	}
	return strings.TrimSuffix(r.Stderr, "\n")
}

// ClosedAddr returns a loopback address nothing listens on.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
