package chaos

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// fakeNodeEnv makes the test binary act as a stand-in for `weir serve`, so
// the process handling of Cluster is tested without a real broker.
const fakeNodeEnv = "WEIR_CHAOS_FAKE_NODE"

func TestMain(m *testing.M) {
	if os.Getenv(fakeNodeEnv) == "1" {
		os.Exit(runFakeNode(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// runFakeNode accepts the serve command line Cluster builds, records it in
// DATA/args, answers /readyz with 200 until killed, or exits at once with
// status 3 when given --fake-exit.
func runFakeNode(args []string) int {
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprintln(os.Stderr, "fake node: want serve, got", args)
		return 2
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "")
	httpAddr := fs.String("http-addr", "", "")
	exit := fs.Bool("fake-exit", false, "")
	for _, name := range []string{"node-id", "kafka-addr", "rpc-addr", "seeds", "rpc-dial-map"} {
		fs.String(name, "", "")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *exit {
		return 3
	}
	if err := os.WriteFile(filepath.Join(*dataDir, "args"), []byte(strings.Join(args, "\n")), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	fmt.Println("fake node ready on", *httpAddr)
	http.Serve(ln, mux)
	return 1
}

func fakeCluster(t *testing.T, nodes int, extra ...string) *Cluster {
	t.Helper()
	c, err := NewCluster(ClusterConfig{
		Binary:    os.Args[0],
		Dir:       t.TempDir(),
		Nodes:     nodes,
		ExtraArgs: extra,
		Env:       []string{fakeNodeEnv + "=1"},
		Logf:      t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClusterArgs(t *testing.T) {
	defer goleak.VerifyNone(t)
	c, err := NewCluster(ClusterConfig{Binary: "weir", Dir: t.TempDir(), Nodes: 3, ExtraArgs: []string{"--x"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	flagValue := func(args []string, name string) string {
		i := slices.Index(args, name)
		if i < 0 || i+1 >= len(args) {
			t.Fatalf("no %s in %v", name, args)
		}
		return args[i+1]
	}
	var seeds []string
	for i := range c.Size() {
		n := c.Node(i)
		args := c.Args(i)
		if args[0] != "serve" || args[len(args)-1] != "--x" {
			t.Fatalf("node %d args %v", i, args)
		}
		if got := flagValue(args, "--node-id"); got != fmt.Sprint(i+1) || n.ID != int32(i+1) {
			t.Fatalf("node %d: --node-id %s, ID %d", i, got, n.ID)
		}
		for name, want := range map[string]string{"--data-dir": n.DataDir, "--kafka-addr": n.KafkaAddr,
			"--http-addr": n.HTTPAddr, "--rpc-addr": n.RPCAddr} {
			if got := flagValue(args, name); got != want {
				t.Fatalf("node %d: %s %s, want %s", i, name, got, want)
			}
		}
		// Every node gets the same seeds: the real RPC addresses.
		seeds = append(seeds, flagValue(args, "--seeds"))
		// It dials every other node through its own proxy.
		var want []string
		for j := range c.Size() {
			if j != i {
				if c.Proxy(i, j).Target() != c.Node(j).RPCAddr {
					t.Fatalf("proxy %d->%d targets %s", i, j, c.Proxy(i, j).Target())
				}
				want = append(want, c.Node(j).RPCAddr+"="+c.Proxy(i, j).Addr())
			}
		}
		if got := flagValue(args, "--rpc-dial-map"); got != strings.Join(want, ",") {
			t.Fatalf("node %d: --rpc-dial-map %s, want %s", i, got, strings.Join(want, ","))
		}
	}
	wantSeeds := c.Node(0).RPCAddr + "," + c.Node(1).RPCAddr + "," + c.Node(2).RPCAddr
	for i, s := range seeds {
		if s != wantSeeds {
			t.Fatalf("node %d seeds %s, want %s", i, s, wantSeeds)
		}
	}
	all := append(c.KafkaAddrs(), c.Node(0).HTTPAddr, c.Node(1).RPCAddr)
	if len(slices.Compact(slices.Sorted(slices.Values(all)))) != len(all) {
		t.Fatalf("addresses repeat: %v", all)
	}
	if _, err := c.Partition([]int{0}, []int{0}); err == nil {
		t.Fatal("a node in two groups was accepted")
	}
	if _, err := c.OneWay(1, 1); err == nil {
		t.Fatal("a link from a node to itself was accepted")
	}
	if _, err := c.Kill(5); err == nil {
		t.Fatal("killing a node that does not exist was accepted")
	}
}

func TestClusterPartitionFaults(t *testing.T) {
	defer goleak.VerifyNone(t)
	c, err := NewCluster(ClusterConfig{Binary: "weir", Dir: t.TempDir(), Nodes: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	modes := func() string {
		var b strings.Builder
		for i := range c.Size() {
			for j := range c.Size() {
				switch {
				case i == j:
					b.WriteByte('.')
				case c.Proxy(i, j).Mode() == LinkPass:
					b.WriteByte('p')
				case c.Proxy(i, j).Mode() == LinkBlackhole:
					b.WriteByte('x')
				default:
					b.WriteByte('s')
				}
			}
			b.WriteByte('/')
		}
		return b.String()
	}

	// {0,1} | {2} | {3}: only 0<->1 still talk.
	d, err := c.Partition([]int{0, 1}, []int{2})
	if err != nil {
		t.Fatal(err)
	}
	if d != "partition {n1,n2} | {n3} | {n4}" {
		t.Fatalf("description %q", d)
	}
	if got := modes(); got != ".pxx/p.xx/xx.x/xxx./" {
		t.Fatalf("links after partition: %s", got)
	}
	c.Heal()
	if got := modes(); got != ".ppp/p.pp/pp.p/ppp./" {
		t.Fatalf("links after heal: %s", got)
	}

	// Isolating one node: the others stay together.
	if _, err := c.Partition([]int{2}); err != nil {
		t.Fatal(err)
	}
	if got := modes(); got != ".pxp/p.xp/xx.x/ppx./" {
		t.Fatalf("links after isolating n3: %s", got)
	}
	c.Heal()

	if d, err := c.OneWay(3, 0); err != nil || d != "one-way partition n4 -/-> n1" {
		t.Fatalf("one way: %q %v", d, err)
	}
	if _, err := c.Slow(0, 1, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got := modes(); got != ".spp/p.pp/pp.p/xpp./" {
		t.Fatalf("links after one-way and slow: %s", got)
	}
}

func TestClusterProcessLifecycle(t *testing.T) {
	defer goleak.VerifyNone(t)
	c := fakeCluster(t, 3)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitAllReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(0); err == nil {
		t.Fatal("started a running node")
	}
	args, err := os.ReadFile(filepath.Join(c.Node(0).DataDir, "args"))
	if err != nil || !bytes.Contains(args, []byte("--rpc-dial-map")) {
		t.Fatalf("node 0 got args %q (%v)", args, err)
	}

	if d, err := c.Kill(1); err != nil || d != "kill -9 n2" {
		t.Fatalf("kill: %q %v", d, err)
	}
	if c.Running(1) {
		t.Fatal("n2 still running after Kill")
	}
	if _, err := c.Kill(1); err == nil {
		t.Fatal("killed a stopped node")
	}
	if pauseSupported {
		if _, err := c.Pause(2); err != nil {
			t.Fatal(err)
		}
		if !c.Paused(2) {
			t.Fatal("n3 not paused")
		}
	}
	c.OneWay(0, 2)

	d, err := c.Restore(ctx)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !strings.Contains(d, "start n2") || (pauseSupported && !strings.Contains(d, "resume (SIGCONT) n3")) {
		t.Fatalf("restore did %q", d)
	}
	for i := range c.Size() {
		if !c.Running(i) || c.Paused(i) {
			t.Fatalf("node %d after restore: running %v paused %v", i, c.Running(i), c.Paused(i))
		}
	}
	if c.Proxy(0, 2).Mode() != LinkPass {
		t.Fatal("restore left a link cut")
	}

	// A torn tail kills the node, damages a segment and restarts it.
	seg := filepath.Join(c.Node(0).DataDir, "topics", "chaos-0", "00000000000000000000.log")
	if err := os.MkdirAll(filepath.Dir(seg), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seg, bytes.Repeat([]byte{7}, 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err = c.TearTail(0, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d, "kill -9 n1; torn tail on n1: topics/chaos-0/00000000000000000000.log") || !strings.HasSuffix(d, "start n1") {
		t.Fatalf("torn tail did %q", d)
	}
	if err := c.WaitReady(ctx, 0); err != nil {
		t.Fatal(err)
	}

	if d, err := c.KillAll(); err != nil || d != "kill -9 all (n1,n2,n3)" {
		t.Fatalf("kill all: %q %v", d, err)
	}
	if crashes := c.Crashes(); len(crashes) != 0 {
		t.Fatalf("harness kills counted as crashes: %v", crashes)
	}
}

func TestClusterReportsCrash(t *testing.T) {
	defer goleak.VerifyNone(t)
	c := fakeCluster(t, 1, "--fake-exit")
	defer c.Close()
	if err := c.Start(0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx, 0); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("WaitReady on a node that exited: %v", err)
	}
	crashes := c.Crashes()
	if len(crashes) != 1 || !strings.Contains(crashes[0], "n1 exited on its own") {
		t.Fatalf("crashes: %v", crashes)
	}
}

// segmentFixture writes a partition directory: an older sealed segment, a
// newest one with 5000 data bytes and zero padding to 8 KiB, plus an empty
// partition and an all-zero one that tearing must skip.
func segmentFixture(t *testing.T) (dataDir, older, newest string, data []byte) {
	t.Helper()
	dataDir = t.TempDir()
	dir := filepath.Join(dataDir, "topics", "chaos-3")
	for _, d := range []string{dir, filepath.Join(dataDir, "topics", "empty-0"), filepath.Join(dataDir, "topics", "zeros-1")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	older = filepath.Join(dir, "00000000000000000000.log")
	newest = filepath.Join(dir, "00000000000000000100.log")
	data = bytes.Repeat([]byte("abcdefghij"), 500)
	for path, b := range map[string][]byte{
		older:  bytes.Repeat([]byte{9}, 10000),
		newest: append(slices.Clone(data), make([]byte, 8192-len(data))...),
		filepath.Join(dir, "00000000000000000100.index"):                        {1, 2, 3},
		filepath.Join(dataDir, "topics", "zeros-1", "00000000000000000000.log"): make([]byte, 4096),
	} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dataDir, older, newest, data
}

func TestTearTail(t *testing.T) {
	truncated, flipped := 0, 0
	for seed := uint64(1); seed <= 16; seed++ {
		dataDir, older, newest, data := segmentFixture(t)
		desc, err := tearTail(dataDir, rand.New(rand.NewPCG(seed, seed)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(desc, filepath.Join("topics", "chaos-3", "00000000000000000100.log")) {
			t.Fatalf("seed %d: tore the wrong file: %s", seed, desc)
		}
		if b, _ := os.ReadFile(older); !bytes.Equal(b, bytes.Repeat([]byte{9}, 10000)) {
			t.Fatalf("seed %d: an older segment changed", seed)
		}
		got, err := os.ReadFile(newest)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) < len(data) {
			// Cut within the last 4 KiB of data; what is left is intact.
			truncated++
			if len(got) < len(data)-4096 || !bytes.Equal(got, data[:len(got)]) {
				t.Fatalf("seed %d: truncated to %d bytes: %s", seed, len(got), desc)
			}
			continue
		}
		flipped++
		if len(got) != 8192 {
			t.Fatalf("seed %d: size %d after flipping: %s", seed, len(got), desc)
		}
		var diffs []int
		for i := range got {
			orig := byte(0)
			if i < len(data) {
				orig = data[i]
			}
			if got[i] != orig {
				diffs = append(diffs, i)
			}
		}
		if len(diffs) < 1 || len(diffs) > 4 || diffs[0] < len(data)-4096 || diffs[len(diffs)-1] >= len(data) {
			t.Fatalf("seed %d: flipped bytes at %v: %s", seed, diffs, desc)
		}
	}
	if truncated == 0 || flipped == 0 {
		t.Fatalf("16 seeds gave %d truncations and %d flips; want both kinds", truncated, flipped)
	}
}

func TestTearTailNeedsData(t *testing.T) {
	dataDir := t.TempDir()
	if _, err := tearTail(dataDir, rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Fatal("tore a data dir with no topics")
	}
	zeros := filepath.Join(dataDir, "topics", "t-0")
	os.MkdirAll(zeros, 0o755)
	os.WriteFile(filepath.Join(zeros, "00000000000000000000.log"), make([]byte, 100), 0o644)
	if _, err := tearTail(dataDir, rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Fatal("tore a segment that holds only zeros")
	}
}

func TestDataEnd(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		data, zeros int
	}{{0, 0}, {0, 5000}, {1, 0}, {100, 3996}, {100 << 10, 70 << 10}, {64 << 10, 64 << 10}} {
		path := filepath.Join(dir, fmt.Sprintf("%d-%d", tc.data, tc.zeros))
		b := append(bytes.Repeat([]byte{1}, tc.data), make([]byte, tc.zeros)...)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		end, err := dataEnd(path)
		if err != nil || end != int64(tc.data) {
			t.Errorf("%d data + %d zeros: end %d, %v", tc.data, tc.zeros, end, err)
		}
	}
}
