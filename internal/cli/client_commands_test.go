package cli_test

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/weir-dev/weir/internal/cli/clitest"
	"github.com/weir-dev/weir/internal/server/servertest"
)

// every client command, with the arguments it needs to get as far as
// connecting.
var clientCommands = [][]string{
	{"topic", "create", "t"},
	{"topic", "list"},
	{"topic", "describe", "t"},
	{"topic", "delete", "t"},
	{"topic", "alter-config", "t", "--set", "retention.ms=1"},
	{"topic", "add-partitions", "t", "--num", "1"},
	{"produce", "t"},
	{"consume", "t"},
	{"consume", "t", "--group", "g"},
	{"cluster", "info"},
	{"group", "list"},
	{"group", "describe", "g"},
	{"group", "delete", "g"},
	{"group", "reset-offsets", "g", "--topic", "t", "--to-earliest"},
}

func TestUnreachableBroker(t *testing.T) {
	addr := clitest.ClosedAddr(t)
	for _, args := range clientCommands {
		for _, format := range []string{"text", "json"} {
			// A generous --timeout: a refused connection must fail at
			// once, not when the timeout runs out (the test deadline in
			// clitest catches a hang).
			args := append(args, "--brokers", addr, "--timeout", "30s")
			if args[0] != "consume" {
				args = append(args, "--format", format)
			}
			got := clitest.Fails(t, "line\n", args...)
			if want := "weir: cannot reach broker at " + addr + ": "; !strings.HasPrefix(got, want) {
				t.Errorf("weir %s:\n got %s\nwant %s...", strings.Join(args, " "), got, want)
			}
		}
	}
}

// silentBroker accepts connections and never answers.
func silentBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func TestSilentBrokerTimesOut(t *testing.T) {
	addr := silentBroker(t)
	for _, args := range [][]string{{"topic", "list"}, {"consume", "t"}, {"consume", "t", "--group", "g"}, {"cluster", "info"}, {"group", "list"}} {
		got := clitest.Fails(t, "", append(args, "--brokers", addr, "--timeout", "200ms")...)
		if want := "weir: cannot reach broker at " + addr + ": no answer within 200ms"; got != want {
			t.Errorf("weir %s:\n got %s\nwant %s", strings.Join(args, " "), got, want)
		}
	}
}

func TestBrokersFromEnvironment(t *testing.T) {
	n := servertest.Start(t, nil)
	t.Setenv("WEIR_BROKERS", n.Addr())
	clitest.MustRun(t, "", "topic", "create", "env")
	if out := clitest.MustRun(t, "", "topic", "list").Stdout; !strings.Contains(out, "env ") {
		t.Errorf("topic list through $WEIR_BROKERS: %q", out)
	}
	// The flag wins over the environment.
	closed := clitest.ClosedAddr(t)
	if got := clitest.Fails(t, "", "topic", "list", "--brokers", closed); !strings.Contains(got, closed) {
		t.Errorf("--brokers did not override $WEIR_BROKERS: %s", got)
	}
	t.Setenv("WEIR_BROKERS", closed)
	if got := clitest.Fails(t, "", "cluster", "info"); !strings.Contains(got, closed) {
		t.Errorf("$WEIR_BROKERS not used: %s", got)
	}
}

func TestErrorsAreOneLineWithoutUsage(t *testing.T) {
	for _, args := range [][]string{
		{"topic", "create"},
		{"topic", "create", "t", "--partitions", "many"},
		{"consume", "t", "--no-such-flag"},
		{"produce"},
		{"cluster", "info", "extra"},
		{"group", "describe"},
		{"group", "reset-offsets", "g", "--topic", "t"},
		{"consume", "t", "--group", "g", "-p", "0"},
		{"topic", "list", "--timeout", "0s"},
	} {
		// Fails checks for exactly one "weir: " line on stderr.
		got := clitest.Fails(t, "", args...)
		if strings.Contains(got, "Usage:") {
			t.Errorf("weir %s printed usage: %s", strings.Join(args, " "), got)
		}
	}
}
