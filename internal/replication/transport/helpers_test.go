package transport

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/weir-dev/weir/internal/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// eventually polls cond until it holds; it fails the test after a generous
// limit that only a hung transport reaches.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// heartbeat is a heartbeat-sized message; Index carries a sequence number
// so tests can check order.
func heartbeat(from, to, seq uint64) *raftpb.Message {
	return &raftpb.Message{
		Type:   raftpb.MsgHeartbeat.Enum(),
		From:   proto.Uint64(from),
		To:     proto.Uint64(to),
		Term:   proto.Uint64(7),
		Commit: proto.Uint64(1000 + seq),
		Index:  proto.Uint64(seq),
	}
}

// appMsg is a MsgApp with entries, for round trips of nested messages.
func appMsg(from, to, seq uint64, payload []byte) *raftpb.Message {
	return &raftpb.Message{
		Type:    raftpb.MsgApp.Enum(),
		From:    proto.Uint64(from),
		To:      proto.Uint64(to),
		Term:    proto.Uint64(3),
		LogTerm: proto.Uint64(3),
		Index:   proto.Uint64(seq),
		Commit:  proto.Uint64(seq),
		Entries: []*raftpb.Entry{
			{Term: proto.Uint64(3), Index: proto.Uint64(seq + 1), Type: raftpb.EntryNormal.Enum(), Data: payload},
			{Term: proto.Uint64(3), Index: proto.Uint64(seq + 2), Type: raftpb.EntryNormal.Enum()},
		},
	}
}

// recorder is a Handler that keeps everything it receives, by sender.
type recorder struct {
	mu    sync.Mutex
	got   map[uint64][]Envelope
	total int
	calls int
}

func newRecorder() *recorder { return &recorder{got: make(map[uint64][]Envelope)} }

func (r *recorder) handle(from uint64, envs []Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[from] = append(r.got[from], envs...)
	r.total += len(envs)
	r.calls++
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

func (r *recorder) from(id uint64) []Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Envelope(nil), r.got[id]...)
}

// unreachables counts Unreachable reports by peer.
type unreachables struct {
	mu sync.Mutex
	n  map[uint64]int
}

func (u *unreachables) report(peer uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n == nil {
		u.n = make(map[uint64]int)
	}
	u.n[peer]++
}

func (u *unreachables) count(peer uint64) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n[peer]
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// testNode is a TCP transport started for a test.
type testNode struct {
	*TCP
	id    uint64
	rec   *recorder
	unr   *unreachables
	clock *clock.Fake
	logs  *logBuffer
	serve chan error
}

type nodeOpt func(*TCPConfig)

func withCluster(c string) nodeOpt { return func(cfg *TCPConfig) { cfg.ClusterID = c } }

func withListener(ln net.Listener) nodeOpt { return func(cfg *TCPConfig) { cfg.Listener = ln } }

func withHandler(h Handler) nodeOpt { return func(cfg *TCPConfig) { cfg.Handler = h } }

// startNode starts a transport on 127.0.0.1:0 (or the given listener) with a
// fake clock, so backoff waits only when the test advances it.
func startNode(t testing.TB, id uint64, opts ...nodeOpt) *testNode {
	t.Helper()
	n := &testNode{
		id:    id,
		rec:   newRecorder(),
		unr:   &unreachables{},
		clock: clock.NewFake(time.Unix(0, 0)),
		logs:  &logBuffer{},
		serve: make(chan error, 1),
	}
	cfg := TCPConfig{
		NodeID:      id,
		ClusterID:   "test-cluster",
		Handler:     n.rec.handle,
		Unreachable: n.unr.report,
		Logger:      slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:       n.clock,
		DialTimeout: time.Minute,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.Listener == nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Listener = ln
	}
	tr, err := NewTCP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.TCP = tr
	go func() { n.serve <- tr.Serve() }()
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close node %d: %v", id, err)
		}
		if err := <-n.serve; err != nil && !errors.Is(err, ErrClosed) { // ErrClosed: Serve started late
			t.Errorf("serve node %d: %v", id, err)
		}
		if t.Failed() {
			t.Logf("node %d log:\n%s", id, n.logs)
		}
	})
	return n
}

// connect makes every node know every other.
func connect(nodes ...*testNode) {
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.SetPeer(b.id, b.Addr().String())
			}
		}
	}
}

// checkOrder fails unless envs carry sequence numbers 0..n-1 in order.
func checkOrder(t testing.TB, from uint64, envs []Envelope, n int) {
	t.Helper()
	if len(envs) != n {
		t.Fatalf("from %d: got %d envelopes, want %d", from, len(envs), n)
	}
	for i, e := range envs {
		if got := e.Msg.GetIndex(); got != uint64(i) {
			t.Fatalf("from %d: envelope %d has sequence %d", from, i, got)
		}
		if e.Group != uint64(i%17) {
			t.Fatalf("from %d: envelope %d has group %d, want %d", from, i, e.Group, i%17)
		}
	}
}

func describe(e Envelope) string {
	return fmt.Sprintf("g%d %s %d->%d i%d", e.Group, e.Msg.GetType(), e.Msg.GetFrom(), e.Msg.GetTo(), e.Msg.GetIndex())
}
