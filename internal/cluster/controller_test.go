package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"
)

func TestApplyAssignsAndValidates(t *testing.T) {
	m := newMetadata()
	for id := int32(1); id <= 3; id++ {
		m, _ = m.apply(&Command{Op: opRegisterNode, Node: &Node{ID: id, RPCAddr: fmt.Sprint("n", id)}})
	}
	id := "00112233445566778899aabbccddeeff"
	m2, res := m.apply(&Command{Op: opCreateTopic, Topic: "a", TopicID: id, Partitions: 6, Replicas: 3})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(m.Topics) != 0 {
		t.Fatal("apply changed the metadata it was given")
	}
	leaders := map[int32]int{}
	groups := map[uint64]bool{}
	for _, p := range m2.Topics["a"].Partitions {
		if len(p.Replicas) != 3 || p.Leader != -1 {
			t.Fatalf("partition %+v", p)
		}
		s := slices.Clone(p.Replicas)
		slices.Sort(s)
		if !slices.Equal(s, []int32{1, 2, 3}) {
			t.Fatalf("replicas %v not distinct nodes", p.Replicas)
		}
		leaders[p.Replicas[0]]++
		groups[p.Group] = true
	}
	if len(leaders) != 3 || len(groups) != 6 {
		t.Fatalf("preferred leaders %v, groups %v: not spread", leaders, groups)
	}
	if _, res := m2.apply(&Command{Op: opCreateTopic, Topic: "a", TopicID: id, Partitions: 1, Replicas: 1}); !errors.Is(res.Err, ErrTopicExists) {
		t.Fatalf("duplicate create: %v", res.Err)
	}
	if _, res := m2.apply(&Command{Op: opCreateTopic, Topic: "b", TopicID: id, Partitions: 1, Replicas: 4}); !errors.Is(res.Err, ErrInvalidReplicas) {
		t.Fatalf("rf 4 on 3 nodes: %v", res.Err)
	}
	// A stale leader report loses to a newer one.
	m3, _ := m2.apply(&Command{Op: opLeaders, Leaders: []LeaderReport{{Topic: "a", Partition: 0, Leader: 2, Epoch: 5, ISR: []int32{2, 3}}}})
	m4, _ := m3.apply(&Command{Op: opLeaders, Leaders: []LeaderReport{{Topic: "a", Partition: 0, Leader: 1, Epoch: 4, ISR: []int32{1}}}})
	if p := m4.Topics["a"].Partitions[0]; p.Leader != 2 || p.Epoch != 5 {
		t.Fatalf("after stale report: %+v", p)
	}
	if p := m2.Topics["a"].Partitions[0]; p.Leader != -1 {
		t.Fatal("leader report changed an older metadata")
	}
	m5, res := m4.apply(&Command{Op: opCreatePartitions, Topic: "a", Partitions: 8})
	if res.Err != nil || len(m5.Topics["a"].Partitions) != 8 || m5.Topics["a"].Partitions[0].Leader != 2 {
		t.Fatalf("create partitions: %v %+v", res.Err, m5.Topics["a"])
	}
	a, r1 := m5.apply(&Command{Op: opAllocProducerIDs, Count: 1000})
	_, r2 := a.apply(&Command{Op: opAllocProducerIDs, Count: 1000})
	if r1.Value != 0 || r2.Value != 1000 {
		t.Fatalf("producer id blocks at %d, %d", r1.Value, r2.Value)
	}
}

type testCluster struct {
	t     *testing.T
	dirs  []string
	addrs []string
	nodes []*Controller
}

func newTestCluster(t *testing.T, n int) *testCluster {
	tc := &testCluster{t: t, nodes: make([]*Controller, n)}
	lns := make([]net.Listener, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		tc.addrs = append(tc.addrs, ln.Addr().String())
		tc.dirs = append(tc.dirs, t.TempDir())
	}
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var err error
			tc.nodes[i], err = tc.start(i, lns[i])
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, c := range tc.nodes {
			if c != nil {
				c.Close()
			}
		}
	})
	return tc
}

func (tc *testCluster) start(i int, ln net.Listener) (*Controller, error) {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", tc.addrs[i]); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return Start(ctx, Config{
		NodeID: int32(i + 1), DataDir: tc.dirs[i], Listener: ln, RPCAddr: tc.addrs[i], Seeds: tc.addrs,
		KafkaHost: "127.0.0.1", KafkaPort: int32(9000 + i), TickInterval: 10 * time.Millisecond,
	})
}

// waitFor waits on metadata changes of node i until cond holds.
func (tc *testCluster) waitFor(i int, what string, cond func(*Metadata) bool) *Metadata {
	tc.t.Helper()
	deadline := time.After(time.Minute)
	for {
		ch := tc.nodes[i].Changed()
		if m := tc.nodes[i].Metadata(); cond(m) {
			return m
		}
		select {
		case <-ch:
		case <-deadline:
			tc.t.Fatalf("node %d: timed out waiting for %s", i+1, what)
		}
	}
}

func TestControllerAgreesAndSurvivesRestart(t *testing.T) {
	tc := newTestCluster(t, 3)
	for i := range 3 {
		tc.waitFor(i, "3 registered nodes", func(m *Metadata) bool { return len(m.Nodes) == 3 && m.ClusterID != "" })
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var id [16]byte
	id[0] = 7
	if err := tc.nodes[1].CreateTopic(ctx, "orders", id, 4, 3, map[string]string{"retention.ms": "1000"}); err != nil {
		t.Fatal(err)
	}
	if err := tc.nodes[2].CreateTopic(ctx, "orders", id, 4, 3, nil); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second create from another node: %v", err)
	}
	seen := map[int64]bool{}
	for i := range 3 {
		first, err := tc.nodes[i].AllocateProducerIDs(ctx, 10)
		if err != nil || seen[first] {
			t.Fatalf("node %d: block %d, %v (seen %v)", i+1, first, err, seen)
		}
		seen[first] = true
	}
	want := tc.nodes[1].Metadata().Topics["orders"]
	for i := range 3 {
		m := tc.waitFor(i, "topic orders", func(m *Metadata) bool { return m.Topics["orders"] != nil })
		got := m.Topics["orders"]
		for p := range got.Partitions {
			if !slices.Equal(got.Partitions[p].Replicas, want.Partitions[p].Replicas) {
				t.Fatalf("node %d disagrees on partition %d: %v vs %v", i+1, p, got.Partitions[p].Replicas, want.Partitions[p].Replicas)
			}
		}
	}
	// A restarted node replays the controller log to the same metadata,
	// without probing the seeds again.
	tc.nodes[0].Close()
	c, err := tc.start(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	tc.nodes[0] = c
	m := tc.waitFor(0, "topic orders after restart", func(m *Metadata) bool { return m.Topics["orders"] != nil && len(m.Nodes) == 3 })
	if m.Topics["orders"].Configs["retention.ms"] != "1000" || m.ClusterID != tc.nodes[1].Metadata().ClusterID {
		t.Fatalf("after restart: %+v, cluster %q", m.Topics["orders"], m.ClusterID)
	}
}

func TestApplyMovesAndDrains(t *testing.T) {
	m := newMetadata()
	for id := int32(1); id <= 4; id++ {
		m, _ = m.apply(&Command{Op: opRegisterNode, Node: &Node{ID: id}})
	}
	m, _ = m.apply(&Command{Op: opCreateTopic, Topic: "a", TopicID: "00112233445566778899aabbccddeeff", Partitions: 1, Replicas: 3})
	p := m.Topics["a"].Partitions[0]
	if !slices.Equal(p.Initial, p.Replicas) {
		t.Fatalf("initial %v, replicas %v", p.Initial, p.Replicas)
	}
	spare := int32(10) - p.Replicas[0] - p.Replicas[1] - p.Replicas[2] // the node not holding it
	target := []int32{p.Replicas[0], p.Replicas[1], spare}
	if _, res := m.apply(&Command{Op: opReassign, Topic: "a", Partition: 0, Target: []int32{1, 1, 2}}); !errors.Is(res.Err, ErrInvalidReplicas) {
		t.Fatalf("duplicate replicas accepted: %v", res.Err)
	}
	m2, res := m.apply(&Command{Op: opReassign, Topic: "a", Partition: 0, Target: target})
	if res.Err != nil || !slices.Equal(m2.Topics["a"].Partitions[0].Target, target) {
		t.Fatalf("reassign: %v %+v", res.Err, m2.Topics["a"].Partitions[0])
	}
	// A second move waits for the first; a stale completion is ignored.
	m3, _ := m2.apply(&Command{Op: opReassign, Topic: "a", Partition: 0, Target: p.Replicas})
	if !slices.Equal(m3.Topics["a"].Partitions[0].Target, target) {
		t.Fatal("second move replaced the first")
	}
	if m4, _ := m3.apply(&Command{Op: opReplicasDone, Topic: "a", Partition: 0, Target: p.Replicas}); m4 != m3 {
		t.Fatal("completion of another target applied")
	}
	m5, _ := m3.apply(&Command{Op: opReplicasDone, Topic: "a", Partition: 0, Target: target})
	if got := m5.Topics["a"].Partitions[0]; !slices.Equal(got.Replicas, target) || got.Target != nil || !slices.Equal(got.Initial, p.Initial) {
		t.Fatalf("after the move: %+v", got)
	}
	// Draining survives the node registering again.
	m6, _ := m5.apply(&Command{Op: opDecommission, NodeID: 2})
	m7, _ := m6.apply(&Command{Op: opRegisterNode, Node: &Node{ID: 2, RPCAddr: "moved"}})
	if n := m7.Nodes[2]; !n.Draining || n.RPCAddr != "moved" {
		t.Fatalf("node 2 after re-registering: %+v", n)
	}
	if _, res := m7.apply(&Command{Op: opDecommission, NodeID: 9}); !errors.Is(res.Err, ErrUnknownNode) {
		t.Fatalf("decommission of an unknown node: %v", res.Err)
	}
	// A draining node leaves only once it holds no replica, and may not
	// register again.
	out := p.Replicas[2] // moved off, holds nothing now
	m8, _ := m7.apply(&Command{Op: opDecommission, NodeID: out})
	m8, _ = m8.apply(&Command{Op: opDecommission, NodeID: spare})
	if _, res := m8.apply(&Command{Op: opRemoveNode, NodeID: spare}); res.Err == nil {
		t.Fatal("a draining node that holds replicas was removed")
	}
	m9, res := m8.apply(&Command{Op: opRemoveNode, NodeID: out})
	if _, ok := m9.Nodes[out]; res.Err != nil || ok || !m9.Removed[out] {
		t.Fatalf("remove drained node %d: %v, removed %v", out, res.Err, m9.Removed)
	}
	if _, res := m9.apply(&Command{Op: opRegisterNode, Node: &Node{ID: out}}); !errors.Is(res.Err, ErrUnknownNode) {
		t.Fatalf("a removed node registered again: %v", res.Err)
	}
}
