package cli_test

import (
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

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
	{"module", "list"},
	{"module", "describe", "m"},
	{"module", "pull", "m"},
	{"module", "delete", "m@1.0.0"},
	{"transform", "list"},
	{"transform", "describe", "x"},
	{"transform", "pause", "x"},
	{"transform", "resume", "x"},
	{"transform", "delete", "x"},
	{"transform", "logs", "x"},
	{"view", "list"},
	{"view", "delete", "v"},
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

// A cluster partition can end in Raft's own entries (a new leader appends
// one): consume without --follow still reaches the end.
func TestConsumeReachesTheEndInACluster(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, nil)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Addr())
	}
	brokers := "--brokers=" + strings.Join(addrs, ",")
	deadline := time.Now().Add(time.Minute)
	for clitest.Run(t, "", "topic", "create", "t", "--replicas", "3", brokers).Code != 0 {
		if time.Now().After(deadline) {
			t.Fatal("topic create never succeeded")
		}
		time.Sleep(100 * time.Millisecond) // the cluster is still electing its controller
	}
	// Every node learns of the topic a moment after it is created.
	for r := clitest.Run(t, "a\nb\nc\n", "produce", "t", brokers); r.Code != 0; r = clitest.Run(t, "a\nb\nc\n", "produce", "t", brokers) {
		if !strings.Contains(r.Stderr, "does not exist") || time.Now().After(deadline) {
			t.Fatalf("produce: %s", r.Stderr)
		}
		time.Sleep(50 * time.Millisecond) // the node asked has not applied the new topic yet
	}
	// Stop the partition's leader: its successor appends its own entry
	// after the records, so the partition now ends in one.
	var info struct {
		Partitions []struct {
			Leader int32 `json:"leader"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(clitest.MustRun(t, "", "topic", "describe", "t", brokers, "--format", "json").Stdout), &info); err != nil || len(info.Partitions) != 1 {
		t.Fatalf("describe: %v %+v", err, info)
	}
	nodes[info.Partitions[0].Leader-1].Stop()
	var live []string
	for _, n := range nodes {
		if n.Running() {
			live = append(live, n.Addr())
		}
	}
	brokers = "--brokers=" + strings.Join(live, ",")
	for {
		r := clitest.Run(t, "", "consume", "t", brokers)
		if r.Code == 0 {
			if r.Stdout != "a\nb\nc\n" {
				t.Fatalf("consume printed %q", r.Stdout)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consume never reached the end: %s", r.Stderr)
		}
		time.Sleep(100 * time.Millisecond) // a new leader is being elected
	}
}
