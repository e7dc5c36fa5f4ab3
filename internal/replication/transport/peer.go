package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// peerState says what Send does with envelopes for a peer.
type peerState uint8

const (
	// peerConnecting: a dial or handshake is under way; envelopes queue.
	peerConnecting peerState = iota
	// peerConnected: the writer drains the queue.
	peerConnected
	// peerDown: the last dial failed and the writer waits out its backoff;
	// envelopes are dropped at once (Raft will retransmit) rather than
	// queued to go stale.
	peerDown
)

// errAddrChanged ends a connection whose peer moved.
var errAddrChanged = errors.New("peer address changed")

// peer is the outbound side of one peer: a queue of encoded frames and the
// goroutine that dials, handshakes and writes them.
type peer struct {
	t      *TCP
	id     uint64
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{} // cap 1: frames were queued
	redial chan struct{} // cap 1: the address changed (ends a backoff)

	mu struct {
		sync.Mutex
		addr    string
		state   peerState
		stopped bool
		frames  []frameBuf // queued; the last one is still being filled
		queued  int        // envelopes in frames
		bytes   int        // their encoded size
		spare   [][]byte   // written frames' buffers, for reuse
		// cancelAttempt ends the current connection attempt (dial or
		// connection); an address change calls it.
		cancelAttempt context.CancelFunc
	}
}

func newPeer(t *TCP, id uint64, addr string) *peer {
	p := &peer{
		t:      t,
		id:     id,
		log:    t.log.With("peer", id),
		wake:   make(chan struct{}, 1),
		redial: make(chan struct{}, 1),
	}
	p.ctx, p.cancel = context.WithCancel(t.ctx)
	p.mu.addr = addr
	return p
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (p *peer) setAddr(addr string) {
	p.mu.Lock()
	changed := p.mu.addr != addr
	p.mu.addr = addr
	if changed && p.mu.cancelAttempt != nil {
		p.mu.cancelAttempt()
	}
	p.mu.Unlock()
	if changed {
		signal(p.redial)
	}
}

func (p *peer) addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.addr
}

func (p *peer) stop() {
	p.mu.Lock()
	p.mu.stopped = true
	p.mu.frames, p.mu.queued, p.mu.bytes, p.mu.spare = nil, 0, 0, nil
	p.mu.Unlock()
	p.cancel()
}

// enqueue encodes envs into the queue and returns how many it dropped
// because the peer is down or the queue is full. Envelopes of a stopped
// peer vanish without being counted: the peer was removed on purpose.
func (p *peer) enqueue(envs []Envelope) (dropped int) {
	cfg := &p.t.cfg
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.stopped {
		return 0
	}
	if p.mu.state == peerDown {
		return countMsgs(envs)
	}
	added := false
	for i := range envs {
		e := &envs[i]
		if e.Msg == nil {
			continue
		}
		if p.mu.queued >= cfg.MaxQueue || p.mu.bytes >= cfg.MaxQueueBytes {
			dropped += countMsgs(envs[i:])
			break
		}
		n, size := envelopeLen(e.Group, e.Msg)
		if n > cfg.MaxFrameSize-frameCountLen {
			p.log.Error("dropped raft message", "group", e.Group, "type", e.Msg.GetType().String(),
				"err", fmt.Errorf("%w: %d bytes, frame limit %d", errMsgTooLarge, n, cfg.MaxFrameSize))
			dropped++
			continue
		}
		f := p.openFrameLocked(n)
		if err := f.add(e.Group, e.Msg, size); err != nil {
			p.log.Error("dropped raft message", "group", e.Group, "err", err)
			dropped++
			continue
		}
		p.mu.queued++
		p.mu.bytes += n
		added = true
	}
	if added {
		signal(p.wake)
	}
	return dropped
}

// openFrameLocked returns the frame the next envelope of n bytes goes into.
func (p *peer) openFrameLocked(n int) *frameBuf {
	if k := len(p.mu.frames); k > 0 {
		f := &p.mu.frames[k-1]
		if f.payloadLen()+n <= frameTarget || f.count == 0 {
			return f
		}
	}
	var b []byte
	if k := len(p.mu.spare); k > 0 {
		b, p.mu.spare = p.mu.spare[k-1], p.mu.spare[:k-1]
	}
	p.mu.frames = append(p.mu.frames, newFrameBuf(b))
	return &p.mu.frames[len(p.mu.frames)-1]
}

// take empties the queue and returns its frames.
func (p *peer) take() []frameBuf {
	p.mu.Lock()
	defer p.mu.Unlock()
	frames := p.mu.frames
	p.mu.frames, p.mu.queued, p.mu.bytes = nil, 0, 0
	return frames
}

// recycle keeps a few written buffers of modest size for the next frames.
func (p *peer) recycle(frames []frameBuf) {
	const keep, keepCap = 4, 256 << 10
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range frames {
		if len(p.mu.spare) < keep && cap(f.b) <= keepCap && !p.mu.stopped {
			p.mu.spare = append(p.mu.spare, f.b[:0])
		}
	}
}

func (p *peer) setState(s peerState) {
	p.mu.Lock()
	p.mu.state = s
	p.mu.Unlock()
}

// setDown marks the peer down and drops its queue, returning how many
// envelopes that dropped.
func (p *peer) setDown() int {
	frames := func() []frameBuf {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.mu.state = peerDown
		frames := p.mu.frames
		p.mu.frames, p.mu.queued, p.mu.bytes = nil, 0, 0
		return frames
	}()
	n := 0
	for _, f := range frames {
		n += int(f.count)
	}
	p.recycle(frames)
	return n
}

// reportDropped counts n lost envelopes and tells Raft.
func (p *peer) reportDropped(n int) {
	if n > 0 {
		p.t.stats.dropped.Add(uint64(n))
		p.t.cfg.Unreachable(p.id)
	}
}

// beginAttempt starts a connection attempt to the current address. The
// attempt's context ends when the peer stops or its address changes.
func (p *peer) beginAttempt() (string, context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select { // a pending change is covered by this attempt
	case <-p.redial:
	default:
	}
	if p.mu.cancelAttempt != nil {
		p.mu.cancelAttempt() // release the previous attempt's context
	}
	ctx, cancel := context.WithCancel(p.ctx)
	p.mu.cancelAttempt = cancel
	return p.mu.addr, ctx
}

// run is the peer's writer goroutine: dial, handshake, write until the
// connection breaks, then dial again, backing off after failures.
func (p *peer) run() {
	defer p.t.wg.Done()
	cfg := &p.t.cfg
	backoff := cfg.BackoffMin
	failures := 0
	for {
		addr, attempt := p.beginAttempt()
		conn, err := p.dial(attempt, addr)
		if err == nil {
			p.t.stats.connects.Add(1)
			if failures > 0 {
				p.log.Info("connected to peer", "addr", addr, "after_failures", failures)
			} else {
				p.log.Debug("connected to peer", "addr", addr)
			}
			p.setState(peerConnected)
			var wrote bool
			wrote, err = p.stream(attempt, conn)
			if p.ctx.Err() != nil {
				return
			}
			if wrote {
				// A connection that worked: dial again at once.
				p.log.Info("connection to peer lost", "addr", addr, "err", err)
				failures, backoff = 0, cfg.BackoffMin
				p.setState(peerConnecting)
				continue
			}
			// Broken before anything went through: treat it as a failed
			// dial, so a peer that accepts and hangs up is not hammered.
			err = fmt.Errorf("connection lost before first write: %w", err)
		}
		if p.ctx.Err() != nil {
			return
		}
		if attempt.Err() != nil {
			// The address changed: the new one gets a fresh start.
			p.log.Info("peer address changed", "old", addr)
			failures, backoff = 0, cfg.BackoffMin
			p.setState(peerConnecting)
			continue
		}
		failures++
		level := slog.LevelDebug
		if failures == 1 {
			level = slog.LevelWarn
		}
		p.log.Log(p.ctx, level, "cannot reach peer", "addr", addr, "err", err, "retry_in", backoff)
		p.reportDropped(p.setDown())
		if !p.waitBackoff(backoff) {
			return
		}
		backoff = min(2*backoff, cfg.BackoffMax)
		p.setState(peerConnecting)
	}
}

// waitBackoff waits d, or less if the address changes; false if stopped.
func (p *peer) waitBackoff(d time.Duration) bool {
	tm := p.t.cfg.Clock.NewTimer(d)
	defer tm.Stop()
	select {
	case <-p.ctx.Done():
		return false
	case <-tm.C():
	case <-p.redial:
	}
	return true
}

// dial connects and handshakes; ending ctx aborts both.
func (p *peer) dial(ctx context.Context, addr string) (net.Conn, error) {
	cfg := &p.t.cfg
	d := net.Dialer{Timeout: cfg.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(cfg.DialTimeout))
	h := hello{version: protocolVersion, from: cfg.NodeID, to: p.id, cluster: cfg.ClusterID}
	if _, err := conn.Write(appendHello(nil, h)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("handshake with %s: %w", addr, err)
	}
	status, node, err := readAck(conn)
	if err == nil && status != ackOK {
		err = refusedError{status}
	}
	if err == nil && node != p.id {
		err = fmt.Errorf("reached node %d, want %d", node, p.id)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("handshake with %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// stream writes queued frames to conn until it fails or ctx ends (the peer
// moved or stopped), then closes conn. It reports whether any write
// succeeded.
func (p *peer) stream(ctx context.Context, conn net.Conn) (wrote bool, err error) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	// The acceptor never sends after its handshake reply, so a read
	// returns only when the connection dies; that wakes the writer even
	// when it has nothing to write.
	dead := make(chan struct{})
	p.t.wg.Add(1)
	go func() {
		defer p.t.wg.Done()
		defer close(dead)
		var b [1]byte
		conn.Read(b[:])
	}()
	defer func() {
		conn.Close()
		<-dead
	}()

	signal(p.wake) // envelopes queued while dialing
	var bufs net.Buffers
	for {
		select {
		case <-ctx.Done():
			return wrote, errAddrChanged
		case <-dead:
			return wrote, errors.New("peer closed the connection")
		case <-p.wake:
		}
		frames := p.take()
		if len(frames) == 0 {
			continue
		}
		bufs = bufs[:0]
		envs, size := 0, 0
		for i := range frames {
			b := frames[i].seal()
			bufs = append(bufs, b)
			envs += int(frames[i].count)
			size += len(b)
		}
		conn.SetWriteDeadline(time.Now().Add(p.t.cfg.WriteTimeout))
		w := bufs // WriteTo consumes its receiver
		_, err := w.WriteTo(conn)
		clear(bufs)
		p.recycle(frames)
		if err != nil {
			p.reportDropped(envs)
			return wrote, fmt.Errorf("write %d frames: %w", len(frames), err)
		}
		wrote = true
		s := &p.t.stats
		s.framesSent.Add(uint64(len(frames)))
		s.envsSent.Add(uint64(envs))
		s.bytesSent.Add(uint64(size))
	}
}
