package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-dev/weir/internal/clock"
)

// TCPConfig configures a TCP transport. Zero values take the defaults noted.
type TCPConfig struct {
	NodeID    uint64 // this node; must not be 0 (Raft's "none")
	ClusterID string // peers with another cluster id are refused; at most 255 bytes
	// Listener accepts peers' connections. The transport owns it: Close
	// closes it.
	Listener net.Listener
	Handler  Handler // required
	// Unreachable is told when envelopes for a peer were dropped (queue
	// full, no connection, write failed). It is called from Send's
	// goroutine as well as the transport's, possibly concurrently, and must
	// neither block nor call Send.
	Unreachable func(peer uint64)
	Logger      *slog.Logger // default: discard
	Clock       clock.Clock  // backoff timers; default clock.Real
	// MaxQueue bounds the envelopes queued for one peer (default 65536);
	// MaxQueueBytes bounds their encoded size (default 64 MiB).
	MaxQueue      int
	MaxQueueBytes int
	// MaxFrameSize bounds a frame's payload in both directions (default
	// DefaultMaxFrameSize). An envelope larger than this is never sent.
	MaxFrameSize int
	// DialTimeout bounds a dial and its handshake, outbound and inbound
	// (default 5s). WriteTimeout bounds one write to a peer (default 10s).
	// Both are network deadlines in real time, not Clock time.
	DialTimeout  time.Duration
	WriteTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait between failed dials, which
	// doubles from one to the other (defaults 50ms and 5s).
	BackoffMin time.Duration
	BackoffMax time.Duration
}

func (c *TCPConfig) setDefaults() error {
	if c.NodeID == 0 {
		return errors.New("new transport: node id 0 is reserved")
	}
	if len(c.ClusterID) > maxClusterIDLen {
		return fmt.Errorf("new transport: cluster id longer than %d bytes", maxClusterIDLen)
	}
	if c.Listener == nil {
		return errors.New("new transport: no listener")
	}
	if c.Handler == nil {
		return errors.New("new transport: no handler")
	}
	if c.Unreachable == nil {
		c.Unreachable = func(uint64) {}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	setDefault(&c.MaxQueue, 1<<16)
	setDefault(&c.MaxQueueBytes, 64<<20)
	setDefault(&c.MaxFrameSize, DefaultMaxFrameSize)
	if c.MaxFrameSize < frameCountLen+minEnvelopeLen {
		return fmt.Errorf("new transport: max frame size %d too small", c.MaxFrameSize)
	}
	setDefault(&c.DialTimeout, 5*time.Second)
	setDefault(&c.WriteTimeout, 10*time.Second)
	setDefault(&c.BackoffMin, 50*time.Millisecond)
	setDefault(&c.BackoffMax, 5*time.Second)
	c.BackoffMax = max(c.BackoffMax, c.BackoffMin)
	return nil
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// TCP is the Transport between real nodes: one outbound connection per peer,
// each with a writer goroutine, and one reader goroutine per inbound
// connection. Serve runs the accept loop; Close stops everything and waits
// for every goroutine the transport started.
//
// Lock order: TCP.mu before peer.mu. Callbacks (Handler, Unreachable) are
// never called with a lock held.
type TCP struct {
	cfg    TCPConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stats  tcpCounters

	mu struct {
		sync.Mutex
		closed  bool
		serving bool
		peers   map[uint64]*peer
		inbound map[net.Conn]struct{}
		// bySender holds the newest inbound connection of each peer; an
		// older one is closed when a newer one completes its handshake, so
		// a reconnecting peer's envelopes never interleave across the two.
		bySender map[uint64]net.Conn
	}
}

// TCPStats are a transport's counters since it started.
type TCPStats struct {
	FramesSent        uint64 // frames written (each holds one or more envelopes)
	EnvelopesSent     uint64
	BytesSent         uint64
	FramesReceived    uint64
	EnvelopesReceived uint64
	Dropped           uint64 // envelopes given to Send that were not written
	Connects          uint64 // outbound handshakes that succeeded
	Rejected          uint64 // inbound connections closed for bad input
}

type tcpCounters struct {
	framesSent, envsSent, bytesSent atomic.Uint64
	framesRecv, envsRecv            atomic.Uint64
	dropped, connects, rejected     atomic.Uint64
}

// NewTCP checks cfg and returns a transport. Outbound connections start as
// peers are added; call Serve to accept inbound ones.
func NewTCP(cfg TCPConfig) (*TCP, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	t := &TCP{cfg: cfg}
	t.log = cfg.Logger.With("node", cfg.NodeID)
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.mu.peers = make(map[uint64]*peer)
	t.mu.inbound = make(map[net.Conn]struct{})
	t.mu.bySender = make(map[uint64]net.Conn)
	return t, nil
}

// Addr is the listener's address.
func (t *TCP) Addr() net.Addr { return t.cfg.Listener.Addr() }

// Stats returns the transport's counters.
func (t *TCP) Stats() TCPStats {
	s := &t.stats
	return TCPStats{
		FramesSent:        s.framesSent.Load(),
		EnvelopesSent:     s.envsSent.Load(),
		BytesSent:         s.bytesSent.Load(),
		FramesReceived:    s.framesRecv.Load(),
		EnvelopesReceived: s.envsRecv.Load(),
		Dropped:           s.dropped.Load(),
		Connects:          s.connects.Load(),
		Rejected:          s.rejected.Load(),
	}
}

// Send queues envs for peer `to`; see Transport.
func (t *TCP) Send(to uint64, envs []Envelope) {
	if len(envs) == 0 {
		return
	}
	t.mu.Lock()
	p, closed := t.mu.peers[to], t.mu.closed
	t.mu.Unlock()
	if closed {
		return
	}
	var dropped int
	if p == nil {
		dropped = countMsgs(envs)
		t.log.Debug("dropped envelopes for unknown peer", "peer", to, "envelopes", dropped)
	} else {
		dropped = p.enqueue(envs)
	}
	if dropped > 0 {
		t.stats.dropped.Add(uint64(dropped))
		t.cfg.Unreachable(to)
	}
}

func countMsgs(envs []Envelope) int {
	n := 0
	for i := range envs {
		if envs[i].Msg != nil {
			n++
		}
	}
	return n
}

// SetPeer adds a peer or changes its address. A changed address closes the
// current connection and dials the new one at once.
func (t *TCP) SetPeer(id uint64, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return
	}
	if p := t.mu.peers[id]; p != nil {
		p.setAddr(addr)
		return
	}
	p := newPeer(t, id, addr)
	t.mu.peers[id] = p
	t.wg.Add(1)
	go p.run()
}

// RemovePeer forgets a peer: its connection closes and what was queued for
// it is dropped without reporting.
func (t *TCP) RemovePeer(id uint64) {
	t.mu.Lock()
	p := t.mu.peers[id]
	delete(t.mu.peers, id)
	t.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// Close stops the transport: it closes the listener and every connection,
// drops whatever is queued and waits for the transport's goroutines
// (including a running Serve and handlers in progress) to return. Calling it
// again does nothing. It must not be called from a Handler or Unreachable.
func (t *TCP) Close() error {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return nil
	}
	t.mu.closed = true
	peers := t.mu.peers
	t.mu.peers = nil
	for c := range t.mu.inbound {
		c.Close()
	}
	t.mu.Unlock()

	t.cancel()
	for _, p := range peers {
		p.stop()
	}
	err := t.cfg.Listener.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	t.wg.Wait()
	if err != nil {
		return fmt.Errorf("close transport listener: %w", err)
	}
	return nil
}

// Serve accepts peers' connections until Close, then returns nil. It
// returns ErrClosed if the transport is already closed.
func (t *TCP) Serve() error {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return ErrClosed
	}
	if t.mu.serving {
		t.mu.Unlock()
		return errors.New("transport: Serve called twice")
	}
	t.mu.serving = true
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()

	var backoff time.Duration
	for {
		c, err := t.cfg.Listener.Accept()
		if err != nil {
			if t.ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept peer connection: %w", err)
			}
			// Out of file descriptors and the like: wait and go on.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t.log.Warn("accept peer connection", "err", err, "retry_in", backoff)
			if !sleepCtx(t.ctx, t.cfg.Clock, backoff) {
				return nil
			}
			continue
		}
		backoff = 0
		t.mu.Lock()
		if t.mu.closed {
			t.mu.Unlock()
			c.Close()
			return nil
		}
		t.mu.inbound[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.serveConn(c)
	}
}

// sleepCtx waits d on clk; false if ctx ended first.
func sleepCtx(ctx context.Context, clk clock.Clock, d time.Duration) bool {
	tm := clk.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C():
		return true
	}
}

// serveConn runs one inbound connection: handshake, then frames until the
// connection ends or sends something bad.
func (t *TCP) serveConn(c net.Conn) {
	defer t.wg.Done()
	var from uint64
	defer func() {
		c.Close()
		t.mu.Lock()
		delete(t.mu.inbound, c)
		if from != 0 && t.mu.bySender[from] == c {
			delete(t.mu.bySender, from)
		}
		t.mu.Unlock()
	}()
	log := t.log.With("remote", c.RemoteAddr().String())

	br := bufio.NewReaderSize(c, 64<<10)
	h, err := t.acceptHandshake(c, br)
	if err != nil {
		t.stats.rejected.Add(1)
		log.Warn("rejected peer connection", "err", err)
		return
	}
	log = log.With("peer", h.from)

	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return
	}
	if old := t.mu.bySender[h.from]; old != nil {
		old.Close()
	}
	t.mu.bySender[h.from] = c
	from = h.from
	t.mu.Unlock()
	log.Debug("peer connected")

	var buf []byte
	for {
		payload, err := readFrame(br, buf, t.cfg.MaxFrameSize)
		if err == nil {
			var envs []Envelope
			envs, err = decodeFrame(payload)
			if err == nil {
				t.stats.framesRecv.Add(1)
				t.stats.envsRecv.Add(uint64(len(envs)))
				if len(envs) > 0 {
					t.cfg.Handler(from, envs)
				}
				buf = payload
				if cap(buf) > frameTarget {
					buf = nil // keep no outsized buffer around
				}
				continue
			}
		}
		switch {
		case t.ctx.Err() != nil || errors.Is(err, net.ErrClosed):
		case errors.Is(err, io.EOF):
			log.Debug("peer closed connection")
		case errors.Is(err, io.ErrUnexpectedEOF) || isNetErr(err):
			log.Info("peer connection lost", "err", err)
		default:
			t.stats.rejected.Add(1)
			log.Warn("closing peer connection after bad frame", "err", err)
		}
		return
	}
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// acceptHandshake reads the dialer's hello and answers it.
func (t *TCP) acceptHandshake(c net.Conn, r io.Reader) (hello, error) {
	c.SetDeadline(time.Now().Add(t.cfg.DialTimeout))
	h, err := readHello(r)
	status := ackOK
	switch {
	case errors.Is(err, errBadVersion):
		status = ackBadVersion
	case err != nil:
		return h, err // not our protocol: say nothing
	case h.cluster != t.cfg.ClusterID:
		status = ackClusterMismatch
		err = fmt.Errorf("peer %d is in cluster %q, not %q", h.from, h.cluster, t.cfg.ClusterID)
	case h.to != 0 && h.to != t.cfg.NodeID:
		status = ackWrongNode
		err = fmt.Errorf("peer %d dialed node %d, reached node %d", h.from, h.to, t.cfg.NodeID)
	case h.from == 0:
		err = fmt.Errorf("%w: hello from node 0", errMalformed)
		return h, err
	}
	if _, werr := c.Write(appendAck(nil, status, t.cfg.NodeID)); werr != nil && err == nil {
		err = fmt.Errorf("write handshake reply: %w", werr)
	}
	if err != nil {
		return h, err
	}
	c.SetDeadline(time.Time{})
	return h, nil
}

// Probe asks the node listening at addr for its id: it dials, says hello as
// node from to "any node" (receiver 0) and returns the id in the answer,
// then hangs up. A node learns its seeds' ids this way before it knows who
// they are. The acceptor treats the probe as a connection from from that
// ends at once.
func Probe(ctx context.Context, addr string, from uint64, clusterID string) (uint64, error) {
	if from == 0 {
		return 0, errors.New("probe: node id 0 is reserved")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("probe %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := conn.Write(appendHello(nil, hello{version: protocolVersion, from: from, cluster: clusterID})); err != nil {
		return 0, fmt.Errorf("probe %s: %w", addr, err)
	}
	status, node, err := readAck(conn)
	if err == nil && status != ackOK {
		err = refusedError{status}
	}
	if err != nil {
		return 0, fmt.Errorf("probe %s: %w", addr, err)
	}
	return node, nil
}
