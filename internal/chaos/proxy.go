package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// LinkMode is what a Proxy does with the bytes on its link.
type LinkMode int

const (
	// LinkPass forwards bytes as they come.
	LinkPass LinkMode = iota
	// LinkBlackhole holds every byte: connections stay open, new ones are
	// accepted, but nothing is forwarded in either direction until the link
	// heals. Bytes are held, not dropped, as TCP would retransmit them after
	// a real partition; dropping bytes from the middle of a stream is not a
	// failure a network can produce.
	LinkBlackhole
	// LinkSlow forwards every chunk after a fixed delay and, optionally,
	// no faster than a byte rate.
	LinkSlow
)

func (m LinkMode) String() string {
	switch m {
	case LinkPass:
		return "pass"
	case LinkBlackhole:
		return "blackhole"
	case LinkSlow:
		return "slow"
	}
	return fmt.Sprintf("LinkMode(%d)", int(m))
}

const (
	proxyChunk    = 32 << 10
	proxyQueue    = 16 // chunks read ahead per direction before the reader blocks
	proxyDialWait = 10 * time.Second
)

// Proxy is a TCP proxy for one directed link: it listens on 127.0.0.1:0 and
// forwards every accepted connection to a target address, in the mode set at
// run time. The zero value is not usable; make one with NewProxy.
type Proxy struct {
	target string
	ln     net.Listener
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and one per connection

	forwarded atomic.Int64

	// onHold, when set (by tests, at construction), is called each time a
	// new connection or a chunk of bytes starts waiting at a blackholed
	// link. Tests use it to know that bytes reached the proxy and are held.
	onHold func()

	mu struct {
		sync.Mutex
		mode    LinkMode
		delay   time.Duration
		rate    int           // bytes per second in LinkSlow; 0 means no limit
		changed chan struct{} // closed and replaced on every mode change
		conns   map[*proxyConn]struct{}
		closed  bool
	}
}

// NewProxy starts a proxy in LinkPass mode that forwards to target.
func NewProxy(target string) (*Proxy, error) { return newProxy(target, nil) }

func newProxy(target string, onHold func()) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for proxy to %s: %w", target, err)
	}
	p := &Proxy{target: target, ln: ln, onHold: onHold}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.mu.changed = make(chan struct{})
	p.mu.conns = make(map[*proxyConn]struct{})
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address clients dial to use the link.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the link forwards to.
func (p *Proxy) Target() string { return p.target }

// Mode reports the link's current mode.
func (p *Proxy) Mode() LinkMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.mode
}

// BytesForwarded counts the bytes written to either side so far.
func (p *Proxy) BytesForwarded() int64 { return p.forwarded.Load() }

// Blackhole stops forwarding on the link, for existing and new connections.
func (p *Proxy) Blackhole() { p.setMode(LinkBlackhole, 0, 0) }

// Slow delays every chunk by delay and, if bytesPerSecond > 0, limits the
// link to that rate in each direction.
func (p *Proxy) Slow(delay time.Duration, bytesPerSecond int) {
	p.setMode(LinkSlow, delay, bytesPerSecond)
}

// Heal returns the link to LinkPass; held bytes are then delivered.
func (p *Proxy) Heal() { p.setMode(LinkPass, 0, 0) }

func (p *Proxy) setMode(m LinkMode, delay time.Duration, rate int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.mode, p.mu.delay, p.mu.rate = m, delay, rate
	close(p.mu.changed)
	p.mu.changed = make(chan struct{})
}

// Close stops listening, closes every proxied connection and waits for all
// of the proxy's goroutines to finish.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return nil
	}
	p.mu.closed = true
	conns := make([]*proxyConn, 0, len(p.mu.conns))
	for c := range p.mu.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()

	p.cancel()
	err := p.ln.Close()
	for _, c := range conns {
		c.teardown()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or similar: back off a little
			// rather than spin, and keep the link alive.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		c := &proxyConn{client: conn, done: make(chan struct{})}
		p.mu.Lock()
		if p.mu.closed {
			p.mu.Unlock()
			conn.Close()
			return
		}
		p.mu.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(c)
	}
}

// linkState is a snapshot of the link's settings.
type linkState struct {
	delay   time.Duration
	rate    int
	changed <-chan struct{}
}

// admit waits while the link is blackholed and returns the settings in force
// once it is open. It returns false if the connection was torn down first.
func (p *Proxy) admit(done <-chan struct{}) (linkState, bool) {
	held := false
	for {
		p.mu.Lock()
		mode := p.mu.mode
		st := linkState{delay: p.mu.delay, rate: p.mu.rate, changed: p.mu.changed}
		p.mu.Unlock()
		if mode != LinkBlackhole {
			return st, true
		}
		if !held {
			held = true
			if p.onHold != nil {
				p.onHold()
			}
		}
		select {
		case <-st.changed:
		case <-done:
			return linkState{}, false
		}
	}
}

// serve proxies one accepted connection. The upstream connection is dialed
// only once the link is open, so a connection made during a blackhole reaches
// the target only after it heals, as a SYN would.
func (p *Proxy) serve(c *proxyConn) {
	defer p.wg.Done()
	defer func() {
		c.teardown()
		p.mu.Lock()
		delete(p.mu.conns, c)
		p.mu.Unlock()
	}()
	if _, ok := p.admit(c.done); !ok {
		return
	}
	d := net.Dialer{Timeout: proxyDialWait}
	up, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		return
	}
	if !c.setUpstream(up) {
		up.Close()
		return
	}
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); p.pipe(c, c.client, up) }()
	go func() { defer pipes.Done(); p.pipe(c, up, c.client) }()
	pipes.Wait()
}

type chunk struct {
	data []byte
	read time.Time
}

// pipe copies src to dst through the link's gate. A reader goroutine reads
// ahead into a bounded queue (so a slow link delays bytes without also
// serialising the delay per chunk); this goroutine writes each chunk when the
// link allows it.
func (p *Proxy) pipe(c *proxyConn, src, dst net.Conn) {
	queue := make(chan chunk, proxyQueue)
	var readErr error
	var reader sync.WaitGroup
	reader.Add(1)
	go func() {
		defer reader.Done()
		defer close(queue)
		buf := make([]byte, proxyChunk)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				ch := chunk{data: append([]byte(nil), buf[:n]...), read: time.Now()}
				select {
				case queue <- ch:
				case <-c.done:
					return
				}
			}
			if err != nil {
				readErr = err
				return
			}
		}
	}()

	clean := p.drain(c, queue, dst)
	reader.Wait()
	if clean && errors.Is(readErr, io.EOF) {
		// The sender finished; pass the half-close on so the other
		// direction can finish too.
		if hc, ok := dst.(interface{ CloseWrite() error }); ok && hc.CloseWrite() == nil {
			return
		}
	}
	c.teardown()
}

// drain writes queued chunks to dst as the link allows. It returns true if
// the queue was closed by its reader, false if the connection went away.
func (p *Proxy) drain(c *proxyConn, queue <-chan chunk, dst net.Conn) bool {
	var nextFree time.Time // when the rate limit lets the next chunk start
	for ch := range queue {
		for {
			st, ok := p.admit(c.done)
			if !ok {
				return false
			}
			due := ch.read.Add(st.delay)
			if st.rate > 0 {
				start := due
				if nextFree.After(start) {
					start = nextFree
				}
				due = start.Add(time.Duration(len(ch.data)) * time.Second / time.Duration(st.rate))
			}
			wait := time.Until(due)
			if wait <= 0 {
				if st.rate > 0 {
					nextFree = due
				}
				break
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
				// Re-check the mode: the link may have been
				// blackholed while this chunk waited.
				continue
			case <-st.changed:
				t.Stop()
				continue
			case <-c.done:
				t.Stop()
				return false
			}
		}
		if _, err := dst.Write(ch.data); err != nil {
			c.teardown()
			return false
		}
		p.forwarded.Add(int64(len(ch.data)))
	}
	return true
}

// proxyConn is one proxied connection: the accepted client side and, once
// dialed, the upstream side.
type proxyConn struct {
	client net.Conn
	done   chan struct{} // closed by teardown

	mu struct {
		sync.Mutex
		upstream net.Conn
		down     bool
	}
}

// setUpstream records the dialed upstream connection; it returns false if
// the connection was torn down meanwhile.
func (c *proxyConn) setUpstream(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.down {
		return false
	}
	c.mu.upstream = up
	return true
}

// teardown closes both sides and wakes everything waiting on the connection.
// It is idempotent.
func (c *proxyConn) teardown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.down {
		return
	}
	c.mu.down = true
	close(c.done)
	c.client.Close()
	if c.mu.upstream != nil {
		c.mu.upstream.Close()
	}
}
