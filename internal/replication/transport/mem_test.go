package transport

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// memTestNode is a test node on a MemNetwork that records what it receives.
type memTestNode struct {
	ep  *MemEndpoint
	rec *recorder
	unr *unreachables
}

func attach(n *MemNetwork, ids ...uint64) map[uint64]*memTestNode {
	nodes := make(map[uint64]*memTestNode)
	for _, id := range ids {
		nd := &memTestNode{rec: newRecorder(), unr: &unreachables{}}
		nd.ep = n.Endpoint(id, nd.rec.handle, nd.unr.report)
		nodes[id] = nd
	}
	return nodes
}

func hb(from, to, seq uint64) []Envelope {
	return []Envelope{{Group: seq % 17, Msg: heartbeat(from, to, seq)}}
}

func checkConservation(t *testing.T, n *MemNetwork) {
	t.Helper()
	s := n.Stats()
	if s.Sent+s.Duplicated != s.Delivered+s.Dropped+uint64(s.Pending) {
		t.Fatalf("envelopes unaccounted for: %+v", s)
	}
}

// chatter runs a small protocol on a faulty network and returns the
// delivery trace: every node pings the others; each delivery of a ping
// with an even sequence number is answered.
func chatter(seed int64, reorder bool) []string {
	n := NewMemNetwork(seed)
	n.SetDropRate(0.1)
	n.SetDuplicateRate(0.1)
	n.SetReorder(reorder)
	var trace []string
	eps := make(map[uint64]*MemEndpoint)
	for _, id := range []uint64{1, 2, 3} {
		eps[id] = n.Endpoint(id, func(from uint64, envs []Envelope) {
			for _, e := range envs {
				trace = append(trace, fmt.Sprintf("%d<-%d %s", id, from, describe(e)))
				if e.Msg.GetIndex()%2 == 0 && e.Msg.GetIndex() < 1000 {
					eps[id].Send(from, hb(id, from, e.Msg.GetIndex()+1001))
				}
			}
		}, nil)
	}
	for round := range uint64(30) {
		for from := uint64(1); from <= 3; from++ {
			for to := uint64(1); to <= 3; to++ {
				if from != to {
					eps[from].Send(to, hb(from, to, round))
				}
			}
		}
		n.Deliver(4)
	}
	n.DeliverAll()
	return trace
}

func TestMemDeterministic(t *testing.T) {
	for _, reorder := range []bool{false, true} {
		a, b := chatter(42, reorder), chatter(42, reorder)
		if !slices.Equal(a, b) {
			t.Fatalf("reorder=%v: same seed, different histories", reorder)
		}
		if len(a) < 150 {
			t.Fatalf("reorder=%v: only %d deliveries", reorder, len(a))
		}
		if slices.Equal(a, chatter(43, reorder)) {
			t.Fatalf("reorder=%v: seeds 42 and 43 gave the same history", reorder)
		}
	}
}

func TestMemFIFOPerLink(t *testing.T) {
	n := NewMemNetwork(1)
	nodes := attach(n, 1, 2, 3)
	const k = 200
	for i := range uint64(k) {
		nodes[1].ep.Send(3, hb(1, 3, i))
		nodes[2].ep.Send(3, hb(2, 3, i))
	}
	if got := n.Deliver(10); got != 10 {
		t.Fatalf("Deliver(10) = %d", got)
	}
	if got := n.DeliverAll(); got != 2*k-10 {
		t.Fatalf("DeliverAll = %d", got)
	}
	for _, from := range []uint64{1, 2} {
		got := nodes[3].rec.from(from)
		for i, e := range got {
			if e.Msg.GetIndex() != uint64(i) {
				t.Fatalf("from %d: position %d has %d", from, i, e.Msg.GetIndex())
			}
		}
	}
	// Envelopes travel one per handler call.
	all := nodes[3].rec
	all.mu.Lock()
	calls := all.calls
	all.mu.Unlock()
	if calls != 2*k {
		t.Fatalf("%d handler calls, want one per envelope", calls)
	}
	checkConservation(t, n)
}

func TestMemReorder(t *testing.T) {
	n := NewMemNetwork(7)
	n.SetReorder(true)
	nodes := attach(n, 1, 2)
	for i := range uint64(100) {
		nodes[1].ep.Send(2, hb(1, 2, i))
	}
	n.DeliverAll()
	got := nodes[2].rec.from(1)
	if len(got) != 100 {
		t.Fatalf("delivered %d", len(got))
	}
	seqs := make([]uint64, len(got))
	for i, e := range got {
		seqs[i] = e.Msg.GetIndex()
	}
	if slices.IsSorted(seqs) {
		t.Fatal("reordering delivered in order")
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != uint64(i) {
			t.Fatalf("lost or duplicated %d", i)
		}
	}
}

func TestMemPartitions(t *testing.T) {
	n := NewMemNetwork(3)
	nodes := attach(n, 1, 2, 3)

	// In flight when the partition starts: dropped on the way, and the
	// sender hears about it.
	nodes[1].ep.Send(2, hb(1, 2, 0))
	n.Partition(1, 2)
	if n.DeliverAll() != 0 || nodes[1].unr.count(2) != 1 {
		t.Fatalf("in-flight envelope across a new partition: unreachable %d", nodes[1].unr.count(2))
	}
	// Sent across it: dropped at once and reported, both ways.
	nodes[1].ep.Send(2, hb(1, 2, 1))
	nodes[2].ep.Send(1, hb(2, 1, 1))
	if nodes[1].unr.count(2) != 2 || nodes[2].unr.count(1) != 1 || n.Pending() != 0 {
		t.Fatal("sends across a partition were not reported")
	}
	// Other links are unaffected.
	nodes[1].ep.Send(3, hb(1, 3, 0))
	if n.DeliverAll() != 1 {
		t.Fatal("1->3 blocked by the 1-2 partition")
	}
	n.Heal(1, 2)
	nodes[1].ep.Send(2, hb(1, 2, 2))
	if n.DeliverAll() != 1 {
		t.Fatal("healed link does not deliver")
	}

	n.OneWay(3, 1)
	nodes[3].ep.Send(1, hb(3, 1, 0))
	nodes[1].ep.Send(3, hb(1, 3, 1))
	if n.DeliverAll() != 1 || nodes[3].unr.count(1) != 1 || len(nodes[3].rec.from(1)) != 2 {
		t.Fatal("one-way cut")
	}
	n.HealAll()

	n.Isolate(2)
	nodes[1].ep.Send(2, hb(1, 2, 3))
	nodes[2].ep.Send(3, hb(2, 3, 0))
	nodes[3].ep.Send(1, hb(3, 1, 1))
	if n.DeliverAll() != 1 || nodes[1].unr.count(2) != 3 || nodes[2].unr.count(3) != 1 {
		t.Fatal("isolation")
	}
	n.HealAll()
	nodes[1].ep.Send(2, hb(1, 2, 4))
	if n.DeliverAll() != 1 {
		t.Fatal("HealAll did not end the isolation")
	}
	checkConservation(t, n)
}

func TestMemDropsAndDuplicates(t *testing.T) {
	n := NewMemNetwork(11)
	nodes := attach(n, 1, 2)
	n.SetDropRate(0.3)
	const k = 2000
	for i := range uint64(k) {
		nodes[1].ep.Send(2, hb(1, 2, i))
	}
	n.DeliverAll()
	s := n.Stats()
	if s.Dropped < k/5 || s.Dropped > k*2/5 || s.Delivered != k-s.Dropped {
		t.Fatalf("drop rate 0.3: %+v", s)
	}
	if nodes[1].unr.count(2) != 0 {
		t.Fatal("random loss was reported as unreachable")
	}
	checkConservation(t, n)

	n.SetDropRate(0)
	n.SetDuplicateRate(0.5)
	before := n.Stats()
	for i := range uint64(k) {
		nodes[1].ep.Send(2, hb(1, 2, k+i))
	}
	n.DeliverAll()
	s = n.Stats()
	dups := s.Duplicated - before.Duplicated
	if dups < k/3 || dups > k*2/3 || s.Delivered-before.Delivered != k+dups {
		t.Fatalf("duplicate rate 0.5: %+v", s)
	}
	// Each copy is its own message: a receiver may change one freely.
	got := nodes[2].rec.from(1)
	for i := 1; i < len(got); i++ {
		if got[i].Msg == got[i-1].Msg {
			t.Fatal("a duplicate shares its message with the original")
		}
	}
	checkConservation(t, n)
}

func TestMemSendCopies(t *testing.T) {
	n := NewMemNetwork(1)
	nodes := attach(n, 1, 2)
	m := heartbeat(1, 2, 5)
	nodes[1].ep.Send(2, []Envelope{{Group: 1, Msg: m}, {Group: 2}}) // nil Msg skipped
	*m.Index = 99
	n.DeliverAll()
	got := nodes[2].rec.from(1)
	if len(got) != 1 || got[0].Msg.GetIndex() != 5 {
		t.Fatalf("got %v", got)
	}
}

func TestMemCrashRestart(t *testing.T) {
	n := NewMemNetwork(5)
	nodes := attach(n, 1, 2)
	for i := range uint64(10) {
		nodes[1].ep.Send(2, hb(1, 2, i))
		nodes[2].ep.Send(1, hb(2, 1, i))
	}
	n.Deliver(4)
	n.Crash(2)
	if n.Pending() != 0 {
		t.Fatalf("%d envelopes to or from the crashed node still queued", n.Pending())
	}
	nodes[1].ep.Send(2, hb(1, 2, 10))
	if nodes[1].unr.count(2) != 1 {
		t.Fatal("send to a crashed node was not reported")
	}
	old := nodes[2].ep
	old.Send(1, hb(2, 1, 10)) // the dead incarnation is ignored
	if n.Pending() != 0 {
		t.Fatal("a crashed node's endpoint still sends")
	}

	rec := newRecorder()
	ep := n.Restart(2, rec.handle, nil)
	nodes[1].ep.Send(2, hb(1, 2, 11))
	ep.Send(1, hb(2, 1, 11))
	old.Send(1, hb(2, 1, 12))
	if got := n.DeliverAll(); got != 2 {
		t.Fatalf("after restart delivered %d, want 2", got)
	}
	if len(rec.from(1)) != 1 || rec.from(1)[0].Msg.GetIndex() != 11 {
		t.Fatal("restarted node did not get the new envelope")
	}
	got := nodes[1].rec.from(2)
	if last := got[len(got)-1].Msg.GetIndex(); last != 11 {
		t.Fatalf("last from node 2 is %d, want 11", last)
	}

	// Close is a crash too; RemovePeer and SetPeer toggle a destination.
	ep.RemovePeer(1)
	ep.Send(1, hb(2, 1, 13))
	ep.SetPeer(1, "")
	ep.Send(1, hb(2, 1, 14))
	if n.DeliverAll() != 1 {
		t.Fatal("RemovePeer/SetPeer")
	}
	ep.Close()
	nodes[1].ep.Send(2, hb(1, 2, 12))
	if nodes[1].unr.count(2) != 2 {
		t.Fatal("send to a closed endpoint was not reported")
	}
	checkConservation(t, n)
}

func TestMemEndpointTwicePanics(t *testing.T) {
	n := NewMemNetwork(1)
	n.Endpoint(1, nil, nil)
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "already exists") {
			t.Fatalf("recovered %v", r)
		}
	}()
	n.Endpoint(1, nil, nil)
}
