package kafka

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// recConn is a net.Conn that records how many bytes were written to it.
// Writes happen on the connection's writer goroutine, so a deferred
// handler running on that goroutine sees every write made before it.
type recConn struct {
	mu      sync.Mutex
	written int
}

func (c *recConn) Read([]byte) (int, error) { return 0, net.ErrClosed }
func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.written += len(p)
	c.mu.Unlock()
	return len(p), nil
}
func (c *recConn) n() int                           { c.mu.Lock(); defer c.mu.Unlock(); return c.written }
func (c *recConn) Close() error                     { return nil }
func (c *recConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *recConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *recConn) SetDeadline(time.Time) error      { return nil }
func (c *recConn) SetReadDeadline(time.Time) error  { return nil }
func (c *recConn) SetWriteDeadline(time.Time) error { return nil }

// TestReviewWriterFlushesBeforeWaiting: a response that is ready must reach
// the client before the writer blocks in the deferred work (fsync wait,
// long-poll fetch) of the next pipelined request. writeLoop only flushes
// when the queue is empty, so with request B queued behind A, A's response
// sits in the bufio.Writer for as long as B's `later` blocks (a fetch's
// MaxWait, or the next fsync round for a pipelined produce).
func TestReviewWriterFlushesBeforeWaiting(t *testing.T) {
	s := New(Config{}, nil, nil, nil)
	nc := &recConn{}
	c := &conn{s: s, nc: nc, queue: make(chan *pending, 4)}
	s.conns[c] = struct{}{}

	// A: an immediate response (e.g. Metadata/ApiVersions or an acks=1
	// produce whose wait is over).
	c.queue <- &pending{correlationID: 1, resp: s.apiVersionsResponse(0)}
	// B: a pipelined request whose deferred part blocks (here we only
	// observe, at the moment it starts, whether A has been sent).
	sentBeforeB := -1
	c.queue <- &pending{correlationID: 2, later: func(*connWriter) kmsg.Response {
		sentBeforeB = nc.n()
		return s.apiVersionsResponse(0)
	}}
	close(c.queue)
	s.wg.Add(1)
	c.writeLoop()

	if sentBeforeB == 0 {
		t.Errorf("response 1 was still buffered when request 2's deferred work began: it is delayed until that work finishes (up to a fetch's MaxWait)")
	}
	if nc.n() == 0 {
		t.Fatal("nothing written at all")
	}
}
