package servertest

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/weir-dev/weir/internal/config"
)

// StartCluster runs n nodes forming one cluster (every node a seed), each
// in its own temp dir; edit may change each node's config first. The
// nodes start concurrently, as they wait for each other's seeds.
func StartCluster(t testing.TB, n int, edit func(i int, c *config.Config)) []*Node {
	t.Helper()
	rpc := make([]string, n)
	for i := range rpc {
		rpc[i] = freeAddr(t)
	}
	nodes := make([]*Node, n)
	for i := range nodes {
		cfg := config.Default()
		cfg.DataDir = t.TempDir()
		cfg.KafkaAddr = "127.0.0.1:0"
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.GroupInitialRebalanceDelay = 0
		cfg.NodeID = int32(i + 1)
		cfg.RPCAddr = rpc[i]
		cfg.Seeds = rpc
		cfg.RaftTick = 20 * time.Millisecond
		if edit != nil {
			edit(i, &cfg)
		}
		nodes[i] = &Node{t: t, Config: cfg}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = nd.open()
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.Stop()
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start node %d: %v", i+1, err)
		}
	}
	return nodes
}

// Start starts a stopped node again on its data directory and ports.
func (n *Node) Start() {
	n.t.Helper()
	if n.srv == nil {
		n.start()
	}
}

// Running reports whether the node is up.
func (n *Node) Running() bool { return n.srv != nil }

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(fmt.Errorf("reserve a port: %w", err))
	}
	defer ln.Close()
	return ln.Addr().String()
}

// JoinCluster starts one more node that is not a seed: it joins the
// cluster of the given nodes through their seeds.
func JoinCluster(t testing.TB, cluster []*Node, id int32, edit func(c *config.Config)) *Node {
	t.Helper()
	cfg := cluster[0].Config
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.NodeID = id
	cfg.RPCAddr = freeAddr(t)
	if edit != nil {
		edit(&cfg)
	}
	n := &Node{t: t, Config: cfg}
	n.start()
	t.Cleanup(n.Stop)
	return n
}

// WaitReady polls each node's /readyz (a real HTTP endpoint; a node
// registers with the controller in the background) until it answers 200.
func WaitReady(t testing.TB, nodes ...*Node) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, n := range nodes {
		for {
			resp, err := http.Get("http://" + n.HTTPAddr() + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d not ready", n.Config.NodeID)
			}
			time.Sleep(20 * time.Millisecond) // polling a real process's HTTP endpoint
		}
	}
}
