package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

// sendSeq sends n heartbeats numbered from 0 to peer `to`, in batches of
// varying size, with the group derived from the sequence number.
func sendSeq(from *testNode, to uint64, n int) {
	seq := 0
	for batch := 1; seq < n; batch = batch%13 + 1 {
		var envs []Envelope
		for range batch {
			if seq == n {
				break
			}
			envs = append(envs, Envelope{Group: uint64(seq % 17), Msg: heartbeat(from.id, to, uint64(seq))})
			seq++
		}
		from.Send(to, envs)
	}
}

func TestTCPTwoNodes(t *testing.T) {
	a, b := startNode(t, 1), startNode(t, 2)
	connect(a, b)
	const n = 5000
	sendSeq(a, 2, n)
	sendSeq(b, 1, n)
	eventually(t, "all envelopes", func() bool { return a.rec.count() == n && b.rec.count() == n })
	checkOrder(t, 1, b.rec.from(1), n)
	checkOrder(t, 2, a.rec.from(2), n)
	// A sender counts a write after it returns, which may be after the
	// receiver has handled it.
	eventually(t, "sender counters", func() bool {
		return a.Stats().EnvelopesSent == n && b.Stats().EnvelopesSent == n
	})
	if a.Stats().FramesSent != b.Stats().FramesReceived || b.Stats().FramesSent != a.Stats().FramesReceived {
		t.Errorf("frames sent and received differ: %+v %+v", a.Stats(), b.Stats())
	}
	for _, nd := range []*testNode{a, b} {
		s := nd.Stats()
		if s.EnvelopesSent != n || s.EnvelopesReceived != n || s.Dropped != 0 || s.Rejected != 0 {
			t.Errorf("node %d stats %+v", nd.id, s)
		}
		if s.FramesSent == 0 || s.FramesSent > n {
			t.Errorf("node %d sent %d frames", nd.id, s.FramesSent)
		}
		if nd.unr.count(1)+nd.unr.count(2) != 0 {
			t.Errorf("node %d reported a peer unreachable", nd.id)
		}
	}
}

func TestTCPThreeNodes(t *testing.T) {
	nodes := []*testNode{startNode(t, 1), startNode(t, 2), startNode(t, 3)}
	connect(nodes...)
	const n = 3000
	var wg sync.WaitGroup
	for _, from := range nodes {
		for _, to := range nodes {
			if from != to {
				wg.Go(func() { sendSeq(from, to.id, n) })
			}
		}
	}
	wg.Wait()
	eventually(t, "all envelopes", func() bool {
		for _, nd := range nodes {
			if nd.rec.count() != 2*n {
				return false
			}
		}
		return true
	})
	for _, to := range nodes {
		for _, from := range nodes {
			if from != to {
				checkOrder(t, from.id, to.rec.from(from.id), n)
			}
		}
	}
}

// gatedListener holds Accept until the gate opens. Dials still complete
// (the kernel accepts into the backlog), so a dialer waits in its handshake.
type gatedListener struct {
	net.Listener
	gate   chan struct{}
	closed chan struct{}
	once   sync.Once
}

func (g *gatedListener) Accept() (net.Conn, error) {
	select {
	case <-g.gate:
	case <-g.closed:
		return nil, net.ErrClosed
	}
	return g.Listener.Accept()
}

func (g *gatedListener) Close() error {
	g.once.Do(func() { close(g.closed) })
	return g.Listener.Close()
}

// TestTCPCoalesces queues envelopes from many Sends while the connection
// is still being set up; the writer then sends them all in one frame.
func TestTCPCoalesces(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl := &gatedListener{Listener: ln, gate: make(chan struct{}), closed: make(chan struct{})}
	a, b := startNode(t, 1), startNode(t, 2, withListener(gl))
	a.SetPeer(2, b.Addr().String())
	const n = 2000
	for i := range n {
		a.Send(2, []Envelope{{Group: uint64(i % 17), Msg: heartbeat(1, 2, uint64(i))}})
	}
	close(gl.gate)
	eventually(t, "delivery", func() bool { return b.rec.count() == n })
	checkOrder(t, 1, b.rec.from(1), n)
	eventually(t, "sender counters", func() bool { return a.Stats().EnvelopesSent == n })
	s := a.Stats()
	if s.FramesSent != 1 || s.EnvelopesSent != n {
		t.Fatalf("sent %d envelopes in %d frames, want %d in 1", s.EnvelopesSent, s.FramesSent, n)
	}
	b.rec.mu.Lock()
	calls := b.rec.calls
	b.rec.mu.Unlock()
	if calls != 1 {
		t.Fatalf("handler called %d times, want once for the one frame", calls)
	}
}

// TestTCPLargeBatchSplits checks that coalescing stops at the frame target:
// more than a frame's worth of envelopes go out in several frames, in order.
func TestTCPLargeBatchSplits(t *testing.T) {
	a, b := startNode(t, 1), startNode(t, 2)
	connect(a, b)
	payload := bytes.Repeat([]byte("x"), 100<<10)
	const n = 40 // 4 MB: at least four 1 MiB frames
	envs := make([]Envelope, n)
	for i := range envs {
		envs[i] = Envelope{Group: uint64(i % 17), Msg: appMsg(1, 2, uint64(i), payload)}
	}
	a.Send(2, envs)
	eventually(t, "delivery", func() bool { return b.rec.count() == n })
	got := b.rec.from(1)
	for i := range envs {
		if !proto.Equal(got[i].Msg, envs[i].Msg) {
			t.Fatalf("envelope %d differs", i)
		}
	}
	eventually(t, "sender counters", func() bool { return a.Stats().EnvelopesSent == n })
	if f := a.Stats().FramesSent; f < 4 {
		t.Fatalf("%d frames for 4 MB, want at least 4", f)
	}
}

// TestTCPPeerRestart closes a peer and starts a new one on the same address;
// the sender notices, reports the peer unreachable while it is gone, then
// reconnects and delivery resumes in order.
func TestTCPPeerRestart(t *testing.T) {
	a, b := startNode(t, 1), startNode(t, 2)
	connect(a, b)
	a.Send(2, []Envelope{{Group: 1, Msg: heartbeat(1, 2, 0)}})
	eventually(t, "first delivery", func() bool { return b.rec.count() == 1 })

	addr := b.Addr().String()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// While b is down, sends are eventually dropped and reported.
	eventually(t, "peer reported unreachable", func() bool {
		a.Send(2, []Envelope{{Group: 1, Msg: heartbeat(1, 2, 1)}})
		return a.unr.count(2) > 0
	})

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	b2 := startNode(t, 2, withListener(ln))
	// a waits out its backoff on the fake clock; move time along until a
	// probe gets through.
	seq := uint64(100)
	eventually(t, "delivery after restart", func() bool {
		if b2.rec.count() > 0 {
			return true
		}
		if a.clock.Pending() > 0 {
			a.clock.Advance(time.Minute)
		}
		a.Send(2, []Envelope{{Group: 1, Msg: heartbeat(1, 2, seq)}})
		seq++
		return false
	})
	// From here on the connection is up: nothing is lost or reordered.
	first := b2.rec.count()
	for range 500 {
		a.Send(2, []Envelope{{Group: 1, Msg: heartbeat(1, 2, seq)}})
		seq++
	}
	eventually(t, "the rest", func() bool { return b2.rec.count() == first+500 })
	got := b2.rec.from(1)
	for i := 1; i < len(got); i++ {
		if got[i].Msg.GetIndex() <= got[i-1].Msg.GetIndex() {
			t.Fatalf("out of order after restart: %d then %d", got[i-1].Msg.GetIndex(), got[i].Msg.GetIndex())
		}
	}
	if a.Stats().Connects < 2 {
		t.Fatalf("connects = %d, want a reconnect", a.Stats().Connects)
	}
}

func TestTCPHandshakeRefused(t *testing.T) {
	t.Run("cluster mismatch", func(t *testing.T) {
		a, b := startNode(t, 1, withCluster("east")), startNode(t, 2, withCluster("west"))
		a.SetPeer(2, b.Addr().String())
		a.Send(2, []Envelope{{Group: 1, Msg: heartbeat(1, 2, 0)}})
		eventually(t, "unreachable", func() bool { return a.unr.count(2) > 0 })
		eventually(t, "rejection", func() bool { return b.Stats().Rejected > 0 })
		if b.rec.count() != 0 {
			t.Fatal("envelopes crossed clusters")
		}
		if !strings.Contains(a.logs.String(), "cluster id mismatch") {
			t.Errorf("dialer's log does not say why:\n%s", a.logs)
		}
		if !strings.Contains(b.logs.String(), `cluster \"east\"`) {
			t.Errorf("acceptor's log does not say why:\n%s", b.logs)
		}
	})
	t.Run("wrong node", func(t *testing.T) {
		a, b := startNode(t, 1), startNode(t, 2)
		a.SetPeer(3, b.Addr().String()) // b is not node 3
		a.Send(3, []Envelope{{Group: 1, Msg: heartbeat(1, 3, 0)}})
		eventually(t, "unreachable", func() bool { return a.unr.count(3) > 0 })
		if b.rec.count() != 0 || b.Stats().Rejected != 1 {
			t.Fatalf("received %d, rejected %d", b.rec.count(), b.Stats().Rejected)
		}
	})
}

// rawConn dials n and, when handshake is set, completes a handshake as node
// 9, so the test can write arbitrary frames.
func rawConn(t *testing.T, n *testNode, handshake bool) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second)) // only a hung test hits this
	if handshake {
		if _, err := c.Write(appendHello(nil, hello{version: protocolVersion, from: 9, to: n.id, cluster: "test-cluster"})); err != nil {
			t.Fatal(err)
		}
		if status, _, err := readAck(c); err != nil || status != ackOK {
			t.Fatalf("handshake: %v %v", status, err)
		}
	}
	return c
}

// expectClosed reads until the other side closes the connection.
func expectClosed(t *testing.T, c net.Conn) []byte {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("want the peer to close the connection, got %v", err)
	}
	return b
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

func TestTCPRejectsGarbage(t *testing.T) {
	b := startNode(t, 2)
	frame := encodeFrame(t, []Envelope{{Group: 1, Msg: heartbeat(9, 2, 0)}})
	badCRC := append([]byte(nil), frame...)
	badCRC[len(badCRC)-1] ^= 0x40
	huge := binary.BigEndian.AppendUint32(nil, 1<<31)
	huge = append(huge, 0, 0, 0, 0)
	undecodable := sealPayload([]byte{0, 0, 0, 1, 1, 3, 0xff, 0xff, 0xff})

	cases := []struct {
		name      string
		handshake bool
		send      []byte
		reply     []byte // what b answers before closing
	}{
		{name: "http request", send: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{name: "zeros", send: make([]byte, 64)},
		{name: "future version", send: appendHello(nil, hello{version: 2, from: 9}), reply: appendAck(nil, ackBadVersion, 2)},
		{name: "node 0", send: appendHello(nil, hello{version: 1, cluster: "test-cluster"})},
		{name: "bad crc", handshake: true, send: badCRC},
		{name: "oversized frame", handshake: true, send: huge},
		{name: "undecodable message", handshake: true, send: undecodable},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rawConn(t, b, tc.handshake)
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if got := expectClosed(t, c); !bytes.Equal(got, tc.reply) {
				t.Fatalf("reply %q, want %q", got, tc.reply)
			}
			if got := b.Stats().Rejected; got != uint64(i+1) {
				t.Fatalf("rejected = %d, want %d", got, i+1)
			}
		})
	}
	if b.rec.count() != 0 {
		t.Fatalf("handler got %d envelopes from garbage", b.rec.count())
	}
	if !strings.Contains(b.logs.String(), "checksum mismatch") || !strings.Contains(b.logs.String(), "frame too large") {
		t.Errorf("log lacks the reasons:\n%s", b.logs)
	}

	// b still serves well-behaved peers, and a good frame after the
	// handshake goes to the handler.
	c := rawConn(t, b, true)
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	eventually(t, "good frame", func() bool { return b.rec.count() == 1 })
}

// stallListener accepts connections and never answers, so a dialer sits in
// its handshake and everything sent to that peer queues.
func stallListener(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln
}

func TestTCPQueueOverflow(t *testing.T) {
	stall := stallListener(t)
	a := startNode(t, 1, func(c *TCPConfig) { c.MaxQueue = 10; c.MaxFrameSize = 200 })
	a.SetPeer(2, stall.Addr().String())

	envs := make([]Envelope, 15)
	for i := range envs {
		envs[i] = Envelope{Group: 1, Msg: heartbeat(1, 2, uint64(i))}
	}
	a.Send(2, envs)
	if a.unr.count(2) != 1 || a.Stats().Dropped != 5 {
		t.Fatalf("after 15 into a queue of 10: unreachable %d, dropped %d", a.unr.count(2), a.Stats().Dropped)
	}
	a.Send(2, envs[:1])
	if a.unr.count(2) != 2 || a.Stats().Dropped != 6 {
		t.Fatalf("full queue: unreachable %d, dropped %d", a.unr.count(2), a.Stats().Dropped)
	}
	// Unknown peers and messages too large for any frame are dropped too.
	a.Send(3, envs[:2])
	if a.unr.count(3) != 1 || a.Stats().Dropped != 8 {
		t.Fatalf("unknown peer: unreachable %d, dropped %d", a.unr.count(3), a.Stats().Dropped)
	}
	a.SetPeer(4, stall.Addr().String())
	big := &raftpb.Message{Type: raftpb.MsgApp.Enum(), Context: make([]byte, 300)}
	a.Send(4, []Envelope{{Group: 1, Msg: big}, {Group: 1, Msg: heartbeat(1, 4, 0)}})
	if a.unr.count(4) != 1 || a.Stats().Dropped != 9 {
		t.Fatalf("oversized message: unreachable %d, dropped %d", a.unr.count(4), a.Stats().Dropped)
	}
	if !strings.Contains(a.logs.String(), "message too large") {
		t.Errorf("no log line for the oversized message:\n%s", a.logs)
	}
}

// TestTCPSetPeerMoves points a peer at a stalled address, queues, then
// moves it to the real one: the stuck attempt is abandoned and the queued
// envelopes arrive.
func TestTCPSetPeerMoves(t *testing.T) {
	stall := stallListener(t)
	a, b := startNode(t, 1), startNode(t, 2)
	a.SetPeer(2, stall.Addr().String())
	a.Send(2, []Envelope{{Group: 5, Msg: heartbeat(1, 2, 0)}})
	a.SetPeer(2, b.Addr().String())
	eventually(t, "delivery", func() bool { return b.rec.count() == 1 })
	if a.unr.count(2) != 0 {
		t.Fatal("moving a peer reported it unreachable")
	}
}

func TestTCPRemovePeer(t *testing.T) {
	a, b := startNode(t, 1), startNode(t, 2)
	connect(a, b)
	a.Send(2, []Envelope{{Group: 1, Msg: heartbeat(1, 2, 0)}})
	eventually(t, "delivery", func() bool { return b.rec.count() == 1 })
	a.RemovePeer(2)
	a.Send(2, []Envelope{{Group: 1, Msg: heartbeat(1, 2, 1)}})
	if a.unr.count(2) != 1 {
		t.Fatal("send to a removed peer was not reported")
	}
	a.SetPeer(2, b.Addr().String())
	a.Send(2, []Envelope{{Group: 1, Msg: heartbeat(1, 2, 2)}})
	eventually(t, "delivery after re-adding", func() bool { return b.rec.count() == 2 })
}

// TestTCPCloseLeavesNoGoroutines closes transports in every state: idle,
// connected, mid-handshake with a stalled peer, backing off from a dead one,
// and with a half-open inbound connection.
func TestTCPCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t)
	stall := stallListener(t)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()

	a, b, c := startNode(t, 1), startNode(t, 2), startNode(t, 3)
	connect(a, b, c)
	sendSeq(a, 2, 100)
	sendSeq(b, 3, 100)
	eventually(t, "traffic", func() bool { return b.rec.count() == 100 && c.rec.count() == 100 })
	a.SetPeer(7, stall.Addr().String())
	a.Send(7, []Envelope{{Group: 1, Msg: heartbeat(1, 7, 0)}})
	b.SetPeer(8, deadAddr)
	b.Send(8, []Envelope{{Group: 1, Msg: heartbeat(2, 8, 0)}})
	eventually(t, "backoff armed", func() bool { return b.clock.Pending() > 0 })
	half, err := net.Dial("tcp", c.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	half.Write([]byte("WRFT")) // a hello cut short

	for _, n := range []*testNode{a, b, c} {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-n.serve; err != nil && !errors.Is(err, ErrClosed) {
			t.Fatal(err)
		}
		n.serve <- nil // for the cleanup
		if err := n.Serve(); err != ErrClosed {
			t.Fatalf("Serve after Close: %v", err)
		}
		n.Send(2, []Envelope{{Group: 1, Msg: heartbeat(1, 2, 0)}}) // ignored
	}
	stall.Close()
}

func TestNewTCPChecksConfig(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := func(uint64, []Envelope) {}
	for name, cfg := range map[string]TCPConfig{
		"node 0":       {Listener: ln, Handler: h},
		"no listener":  {NodeID: 1, Handler: h},
		"no handler":   {NodeID: 1, Listener: ln},
		"long cluster": {NodeID: 1, Listener: ln, Handler: h, ClusterID: strings.Repeat("c", 256)},
		"tiny frames":  {NodeID: 1, Listener: ln, Handler: h, MaxFrameSize: 3},
	} {
		if _, err := NewTCP(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestProbeLearnsNodeID(t *testing.T) {
	a := startNode(t, 7)
	ctx := context.Background()
	id, err := Probe(ctx, a.Addr().String(), 99, "test-cluster")
	if err != nil || id != 7 {
		t.Fatalf("probe = %d, %v; want 7", id, err)
	}
	if _, err := Probe(ctx, a.Addr().String(), 99, "other-cluster"); err == nil {
		t.Fatal("probe of another cluster succeeded")
	}
	// The node still serves real peers after being probed.
	b := startNode(t, 8)
	connect(a, b)
	sendSeq(b, 7, 3)
	eventually(t, "3 envelopes at node 7", func() bool { return len(a.rec.from(8)) == 3 })
}
