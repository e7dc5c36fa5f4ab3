package serve

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// freeBase finds a base port whose Kafka, HTTP and Raft ports for n nodes
// are all free right now.
func freeBase(t *testing.T, n int) int {
	t.Helper()
	for base := 21000 + int(time.Now().UnixNano()%20000); base < 65000-300; base += 7 {
		ok := true
		for _, off := range []int{0, 100, 200} {
			for i := range n {
				ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+off+i))
				if err != nil {
					ok = false
					break
				}
				ln.Close()
			}
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

func TestLocalClusterStartsAndStops(t *testing.T) {
	base := freeBase(t, 3)
	cfgs := LocalClusterConfigs(3, t.TempDir(), "127.0.0.1", base)
	for i, c := range cfgs {
		if c.NodeID != int32(i+1) || len(c.Seeds) != 3 || c.Seeds[i] != c.RPCAddr || c.KafkaAddr != fmt.Sprintf("127.0.0.1:%d", base+i) {
			t.Fatalf("node %d config: %+v", i+1, c)
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunLocalCluster(ctx, cfgs, io.Discard) }()
	deadline := time.Now().Add(time.Minute)
	for _, c := range cfgs {
		for {
			resp, err := http.Get("http://" + c.HTTPAddr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("node %d never ready", c.NodeID)
			}
			time.Sleep(20 * time.Millisecond) // polling real listeners
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stop: %v", err)
	}
}
