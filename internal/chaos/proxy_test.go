package chaos

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// failAfter bounds how long a test waits for something that should happen
// promptly; it is a deadline for failing, never a way to let time pass.
const failAfter = 10 * time.Second

// echoServer echoes every connection and counts what it sees.
type echoServer struct {
	ln       net.Listener
	wg       sync.WaitGroup
	accepted atomic.Int64
	received atomic.Int64

	mu    sync.Mutex
	conns []net.Conn
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					e.received.Add(int64(n))
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						if tc, ok := c.(*net.TCPConn); ok {
							tc.CloseWrite()
						}
						return
					}
				}
			}()
		}
	}()
	return e
}

func (e *echoServer) Addr() string { return e.ln.Addr().String() }

func (e *echoServer) Close() {
	e.ln.Close()
	e.mu.Lock()
	for _, c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// holdSignal returns an onHold hook and the channel it signals.
func holdSignal() (func(), chan struct{}) {
	ch := make(chan struct{}, 64)
	return func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}, ch
}

func waitSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(failAfter):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, failAfter)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(failAfter))
	return c
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return buf
}

func write(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// roundTrip writes data and reads the echo concurrently (so large payloads
// cannot deadlock on full buffers) and checks it came back intact.
func roundTrip(t *testing.T, c net.Conn, data []byte) {
	t.Helper()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		werr <- err
	}()
	got := readN(t, c, len(data))
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo differs from what was sent (%d bytes)", len(data))
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestProxyPassAndHalfClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	echo := startEcho(t)
	defer echo.Close()
	p, err := NewProxy(echo.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Mode() != LinkPass || p.Target() != echo.Addr() {
		t.Fatalf("new proxy: mode %v target %s", p.Mode(), p.Target())
	}

	c := dial(t, p.Addr())
	defer c.Close()
	data := randomBytes(1<<20, 1)
	roundTrip(t, c, data)

	// A half-close travels through: the echo server sees EOF, closes its
	// side, and the client reads EOF.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after half-close: read %d, %v; want EOF", n, err)
	}
	if got := p.BytesForwarded(); got != 2*int64(len(data)) {
		t.Fatalf("forwarded %d bytes, want %d", got, 2*len(data))
	}
}

func TestProxyBlackholeHoldsExistingConnection(t *testing.T) {
	defer goleak.VerifyNone(t)
	echo := startEcho(t)
	defer echo.Close()
	onHold, held := holdSignal()
	p, err := newProxy(echo.Addr(), onHold)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	c := dial(t, p.Addr())
	defer c.Close()
	roundTrip(t, c, []byte("first"))

	p.Blackhole()
	if p.Mode() != LinkBlackhole {
		t.Fatalf("mode %v after Blackhole", p.Mode())
	}
	write(t, c, []byte("second"))
	waitSignal(t, held, "the proxy to hold the second message")
	// The bytes are in the proxy and held at the gate, so the server can
	// have seen only the first message.
	if got := echo.received.Load(); got != int64(len("first")) {
		t.Fatalf("server received %d bytes during the blackhole, want %d", got, len("first"))
	}

	p.Heal()
	if got := readN(t, c, len("second")); string(got) != "second" {
		t.Fatalf("after heal read %q, want %q", got, "second")
	}
}

func TestProxyBlackholeHoldsBothDirections(t *testing.T) {
	defer goleak.VerifyNone(t)
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	onHold, held := holdSignal()
	p, err := newProxy(backend.Addr().String(), onHold)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	client := dial(t, p.Addr())
	defer client.Close()
	write(t, client, []byte("hi"))
	server, err := backend.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	server.SetDeadline(time.Now().Add(failAfter))
	if got := readN(t, server, 2); string(got) != "hi" {
		t.Fatalf("server read %q", got)
	}
	// The server can read "hi" before the proxy counts it, so the count is
	// checked only once the client-to-server forwarder, which counts "hi"
	// before it takes up "ping", has reported holding "ping".

	p.Blackhole()
	write(t, server, []byte("pong"))
	waitSignal(t, held, "the proxy to hold the server's bytes")
	write(t, client, []byte("ping"))
	waitSignal(t, held, "the proxy to hold the client's bytes")
	if got := p.BytesForwarded(); got != int64(len("hi")) {
		t.Fatalf("forwarded %d bytes in all, want only the %d of \"hi\"", got, len("hi"))
	}

	p.Heal()
	if got := readN(t, client, 4); string(got) != "pong" {
		t.Fatalf("client read %q after heal", got)
	}
	if got := readN(t, server, 4); string(got) != "ping" {
		t.Fatalf("server read %q after heal", got)
	}
}

func TestProxyBlackholeDelaysNewConnections(t *testing.T) {
	defer goleak.VerifyNone(t)
	echo := startEcho(t)
	defer echo.Close()
	onHold, held := holdSignal()
	p, err := newProxy(echo.Addr(), onHold)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	p.Blackhole()
	c := dial(t, p.Addr()) // accepted by the proxy...
	defer c.Close()
	waitSignal(t, held, "the new connection to be held")
	if got := echo.accepted.Load(); got != 0 {
		t.Fatalf("target saw %d connections during the blackhole", got)
	}
	write(t, c, []byte("hello"))

	p.Heal() // ...and reaches the target only now.
	if got := readN(t, c, 5); string(got) != "hello" {
		t.Fatalf("read %q after heal", got)
	}
	if got := echo.accepted.Load(); got != 1 {
		t.Fatalf("target saw %d connections, want 1", got)
	}
}

func TestProxySlowDeliversIntact(t *testing.T) {
	defer goleak.VerifyNone(t)
	echo := startEcho(t)
	defer echo.Close()
	p, err := NewProxy(echo.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	p.Slow(2*time.Millisecond, 0)
	c := dial(t, p.Addr())
	defer c.Close()
	roundTrip(t, c, randomBytes(300<<10, 2))

	p.Slow(time.Millisecond, 8<<20)
	if p.Mode() != LinkSlow {
		t.Fatalf("mode %v after Slow", p.Mode())
	}
	roundTrip(t, c, randomBytes(300<<10, 3))

	p.Heal()
	roundTrip(t, c, []byte("healed"))
}

func TestProxyCloseWithHeldConnections(t *testing.T) {
	defer goleak.VerifyNone(t)
	echo := startEcho(t)
	defer echo.Close()
	onHold, held := holdSignal()
	p, err := newProxy(echo.Addr(), onHold)
	if err != nil {
		t.Fatal(err)
	}

	existing := dial(t, p.Addr())
	defer existing.Close()
	roundTrip(t, existing, []byte("x"))
	p.Blackhole()
	write(t, existing, []byte("held"))
	waitSignal(t, held, "bytes of the existing connection to be held")
	fresh := dial(t, p.Addr())
	defer fresh.Close()
	waitSignal(t, held, "the new connection to be held")

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []net.Conn{existing, fresh} {
		if _, err := io.ReadAll(c); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
			t.Fatalf("read after Close: %v", err)
		}
	}
	// Closing twice and changing modes after Close are harmless.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p.Heal()
}

func TestProxyUnreachableTarget(t *testing.T) {
	defer goleak.VerifyNone(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close()
	p, err := NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := dial(t, p.Addr())
	defer c.Close()
	// The proxy cannot reach the target, so it hangs up.
	if _, err := io.ReadAll(c); err != nil && !isReset(err) {
		t.Fatalf("read: %v", err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

func TestLinkModeString(t *testing.T) {
	for m, want := range map[LinkMode]string{LinkPass: "pass", LinkBlackhole: "blackhole", LinkSlow: "slow", 7: "LinkMode(7)"} {
		if m.String() != want {
			t.Errorf("%d: %q, want %q", int(m), m.String(), want)
		}
	}
}
