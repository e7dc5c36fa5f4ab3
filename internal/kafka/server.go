// Package kafka is Weir's Kafka wire-protocol front end: it accepts client
// connections, frames and decodes requests with kmsg, runs each API against
// the broker (one file per API key) and writes responses in order, with
// pipelining so that fsync waits of one request overlap the next.
package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/broker"
	"github.com/weir-dev/weir/internal/clock"
)

// Config tunes the protocol server.
type Config struct {
	// MaxRequestBytes is the largest request frame accepted (Kafka's
	// socket.request.max.bytes); larger frames close the connection.
	MaxRequestBytes int32
	// AdvertisedHost and AdvertisedPort are what Metadata tells clients.
	AdvertisedHost string
	AdvertisedPort int32
	// IdleTimeout closes connections that send nothing for this long.
	IdleTimeout time.Duration
	// MaxInflight is how many requests of one connection may be between
	// read and answered; beyond it the connection is not read.
	MaxInflight int
	// FetchSessions caps the incremental fetch session cache.
	FetchSessions int
}

// Server serves the Kafka protocol for one broker.
type Server struct {
	cfg      Config
	b        *broker.Broker
	clock    clock.Clock
	logger   *slog.Logger
	apis     *apiTable
	sessions *sessionCache

	closing atomic.Bool
	done    chan struct{} // closed by Shutdown; wakes long polls

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*conn]struct{}
	wg        sync.WaitGroup
}

// New returns a server for b.
func New(cfg Config, b *broker.Broker, clk clock.Clock, logger *slog.Logger) *Server {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 100 << 20
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 64
	}
	if cfg.FetchSessions <= 0 {
		cfg.FetchSessions = 1000
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, b: b, clock: clk, logger: logger, conns: make(map[*conn]struct{}), done: make(chan struct{})}
	s.apis = newAPITable()
	s.sessions = newSessionCache(cfg.FetchSessions)
	return s
}

// SetAdvertised sets the address Metadata advertises, once the listener's
// real port is known.
func (s *Server) SetAdvertised(host string, port int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.AdvertisedHost, s.cfg.AdvertisedPort = host, port
}

func (s *Server) advertised() (string, int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.AdvertisedHost, s.cfg.AdvertisedPort
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("kafka server closed")

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				t := s.clock.NewTimer(backoff)
				<-t.C()
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		backoff = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		c := &conn{s: s, nc: nc, queue: make(chan *pending, s.cfg.MaxInflight)}
		c.ctx, c.cancel = context.WithCancel(context.Background())
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(2)
		s.mu.Unlock()
		go c.readLoop()
		go c.writeLoop()
	}
}

// Shutdown stops accepting, lets every connection answer the requests it
// has read, and closes them. If ctx ends first, connections are cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing.Swap(true) {
		close(s.done)
	}
	for _, ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.nc.SetReadDeadline(time.Unix(1, 0)) // wakes the reader; the writer drains
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// pending is a request that has been read and is waiting for its response
// to be written, in the order requests arrived.
type pending struct {
	correlationID int32
	resp          kmsg.Response
	// later, if set, produces the response on the writer goroutine: used
	// for work that waits (fsync, long-poll fetch) so the reader can go on
	// with the connection's next requests meanwhile.
	later func(w *connWriter) kmsg.Response
}

// connWriter holds buffers that belong to a connection's writer goroutine.
type connWriter struct {
	out     []byte
	scratch []byte // fetch reads
}

type conn struct {
	s  *Server
	nc net.Conn
	// ctx ends when the connection's reader stops (the client went away
	// or the server shuts down), releasing group calls that wait.
	ctx      context.Context
	cancel   context.CancelFunc
	queue    chan *pending
	clientID string
	// produceFrame is reused for Produce requests, the large and frequent
	// ones: their handler has copied the batches into the log by the time
	// it returns, and nothing else keeps the frame.
	produceFrame []byte
}

// frameFor returns the buffer to read the next request frame of size bytes
// into: the reusable produce buffer for Produce, fresh memory otherwise
// (other handlers may keep parts of the frame until they answer).
func (c *conn) frameFor(br *bufio.Reader, size int) []byte {
	if size < 2 || size > 16<<20 {
		return make([]byte, size)
	}
	key, err := br.Peek(2)
	if err != nil || binary.BigEndian.Uint16(key) != 0 {
		return make([]byte, size)
	}
	if cap(c.produceFrame) < size {
		c.produceFrame = make([]byte, size)
	}
	return c.produceFrame[:size]
}

func (c *conn) readLoop() {
	defer c.s.wg.Done()
	defer close(c.queue)
	defer c.cancel()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var sizeBuf [4]byte
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout)) // network deadlines run on the wall clock
		if c.s.closing.Load() {
			return // Shutdown: stop reading; the writer answers what was read
		}
		if _, err := io.ReadFull(br, sizeBuf[:]); err != nil {
			return
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		if size < 0 || size > c.s.cfg.MaxRequestBytes {
			c.s.logger.Warn("closing connection: request frame too large", "remote", c.nc.RemoteAddr(), "bytes", size, "max", c.s.cfg.MaxRequestBytes)
			c.nc.Close()
			return
		}
		frame := c.frameFor(br, int(size))
		if _, err := io.ReadFull(br, frame); err != nil {
			return
		}
		h, req, err := decodeRequest(frame, c.s.apis)
		if errors.Is(err, errUnsupported) {
			if h.key == apiVersionsKey {
				// Answer in v0 so an old or new client can read the
				// versions we support and retry.
				c.queue <- &pending{correlationID: h.correlationID, resp: c.s.unsupportedAPIVersions()}
				continue
			}
			c.s.logger.Info("closing connection: unsupported request", "remote", c.nc.RemoteAddr(), "client", h.clientID, "key", h.key, "version", h.version)
			c.nc.Close()
			return
		}
		if err != nil {
			c.s.logger.Info("closing connection: malformed request", "remote", c.nc.RemoteAddr(), "client", h.clientID, "err", err)
			c.nc.Close()
			return
		}
		c.clientID = h.clientID
		res, ok := c.handle(&h, req)
		if !ok {
			return
		}
		if res == nil {
			continue // acks=0 produce: no response at all
		}
		res.correlationID = h.correlationID
		c.queue <- res
	}
}

// handle runs a request's handler. A panic is a bug in Weir, not in the
// client: it is logged with its stack and costs this connection, never the
// process.
func (c *conn) handle(h *requestHeader, req kmsg.Request) (res *pending, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			c.s.logger.Error("request handler panicked; closing the connection", "key", h.key, "version", h.version,
				"client", h.clientID, "panic", r, "stack", string(debug.Stack()))
			c.nc.Close()
			res, ok = nil, false
		}
	}()
	api, _ := c.s.apis.lookup(h.key, h.version)
	return api.handle(c, h, req), true
}

// runLater runs the deferred part of a request, with the same panic
// containment as handle; nil means the connection was closed.
func (c *conn) runLater(p *pending, w *connWriter) (resp kmsg.Response) {
	defer func() {
		if r := recover(); r != nil {
			c.s.logger.Error("deferred request work panicked; closing the connection", "panic", r, "stack", string(debug.Stack()))
			c.nc.Close()
			resp = nil
		}
	}()
	return p.later(w)
}

func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	defer func() {
		c.nc.Close()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	}()
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	w := &connWriter{}
	failed := false
	for p := range c.queue {
		resp := p.resp
		if p.later != nil && !failed {
			// Answers already encoded must not wait behind this one's
			// fsync or long poll.
			if bw.Buffered() > 0 {
				if err := bw.Flush(); err != nil {
					failed = true
					c.nc.Close()
				}
			}
			if !failed {
				resp = c.runLater(p, w)
			}
		}
		if failed || resp == nil {
			failed = true
			continue // keep draining so the reader never blocks
		}
		w.out = appendResponse(w.out[:0], p.correlationID, resp)
		if _, err := bw.Write(w.out); err != nil {
			failed = true
			c.nc.Close()
			continue
		}
		if len(c.queue) == 0 {
			if err := bw.Flush(); err != nil {
				failed = true
				c.nc.Close()
			}
		}
		if cap(w.out) > 8<<20 {
			w.out = nil // do not keep a huge fetch response buffer around
		}
	}
	if !failed {
		bw.Flush()
	}
}

// respond wraps an immediate response.
func respond(r kmsg.Response) *pending { return &pending{resp: r} }
