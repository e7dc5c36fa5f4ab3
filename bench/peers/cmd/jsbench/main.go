// Command jsbench is the NATS JetStream counterpart of `weir bench`: it
// publishes with PublishAsync and a bounded window of unacknowledged
// messages, reads a stream back with an ordered consumer, or does both at
// a fixed rate for end-to-end latency. It reports through the same
// histogram, pacer and result type as `weir bench` (package measure), so the
// two sides are measured the same way.
//
// Usage:
//
//	jsbench -mode pub -duration 10s [-window 4096] [-rate 0]
//	jsbench -mode sub [-count N]
//	jsbench -mode e2e -rate 5000 -duration 10s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weir-dev/weir/internal/cli/bench/measure"
)

type options struct {
	url      string
	mode     string
	stream   string
	subject  string
	size     int
	duration time.Duration
	warmup   time.Duration
	window   int
	rate     float64
	storage  string
	count    int64
	format   string
	drain    time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "nats://127.0.0.1:14222", "NATS server URL")
	flag.StringVar(&o.mode, "mode", "pub", "pub, sub or e2e")
	flag.StringVar(&o.stream, "stream", "BENCH", "stream name")
	flag.StringVar(&o.subject, "subject", "bench.data", "subject")
	flag.IntVar(&o.size, "size", 1024, "message size in bytes (at least 8)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long to measure (pub, e2e)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "how long to run before measuring (pub, e2e)")
	flag.IntVar(&o.window, "window", 4096, "maximum unacknowledged async publishes")
	flag.Float64Var(&o.rate, "rate", 0, "messages/s; 0 = as fast as possible")
	flag.StringVar(&o.storage, "storage", "file", "stream storage: file or memory")
	flag.Int64Var(&o.count, "count", 0, "messages to read in sub mode; 0 = the whole stream")
	flag.StringVar(&o.format, "format", "text", "output format: text or json")
	flag.DurationVar(&o.drain, "drain-timeout", 30*time.Second, "wait for the last acks and messages")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, &o)
	if res.Mode != "" {
		if werr := measure.Write(os.Stdout, o.format, res); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "jsbench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) (measure.Result, error) {
	if err := measure.CheckFormat(o.format); err != nil {
		return measure.Result{}, err
	}
	if o.size < measure.StampSize || o.window < 1 || o.rate < 0 {
		return measure.Result{}, errors.New("need -size >= 8, -window >= 1 and -rate >= 0")
	}
	nc, err := nats.Connect(o.url)
	if err != nil {
		return measure.Result{}, fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	switch o.mode {
	case "pub":
		return publish(ctx, nc, o)
	case "sub":
		return subscribe(ctx, nc, o)
	case "e2e":
		return e2e(ctx, nc, o)
	}
	return measure.Result{}, fmt.Errorf("unknown -mode %q", o.mode)
}

func ensureStream(ctx context.Context, js jetstream.JetStream, o *options) (jetstream.Stream, error) {
	storage := jetstream.FileStorage
	if o.storage == "memory" {
		storage = jetstream.MemoryStorage
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: o.stream, Subjects: []string{o.subject}, Storage: storage, Replicas: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", o.stream, err)
	}
	return s, nil
}

// window is the measured interval, readable from the client's callback
// goroutines. Messages sent before start are warmup; sending stops at end.
type window struct{ start, end atomic.Int64 }

func (w *window) set(start, end time.Time) {
	w.start.Store(start.UnixNano())
	w.end.Store(end.UnixNano())
}

func (w *window) contains(t time.Time) bool {
	ns := t.UnixNano()
	return ns >= w.start.Load() && ns < w.end.Load()
}

// pubStats is filled by the ack and error handlers.
type pubStats struct {
	records, bytes, acked, errors atomic.Int64
	mu                            sync.Mutex
	ack                           *measure.Histogram
	firstErr                      error
}

// freeList recycles message buffers once they are acknowledged, as the
// Kafka side does, so that neither client's garbage collector weighs on the
// shared cores more than the other's.
type freeList struct {
	c      chan []byte
	filler []byte
}

func (f *freeList) get() []byte {
	select {
	case b := <-f.c:
		return b
	default:
		return append([]byte(nil), f.filler...)
	}
}

func (f *freeList) put(b []byte) {
	select {
	case f.c <- b:
	default:
	}
}

type publisher struct {
	o    *options
	js   jetstream.JetStream
	win  window
	st   pubStats
	free freeList
}

func newPublisher(nc *nats.Conn, o *options) (*publisher, error) {
	p := &publisher{o: o, free: freeList{c: make(chan []byte, o.window+1024), filler: measure.Filler(o.size, 0x5eed)}}
	p.st.ack = measure.NewHistogram()
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(o.window),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
			now := time.Now()
			sent, _ := measure.ReadStamp(m.Data)
			p.st.acked.Add(1)
			if p.win.contains(sent) {
				p.st.records.Add(1)
				p.st.bytes.Add(int64(len(m.Data)))
				p.st.mu.Lock()
				p.st.ack.RecordDuration(now.Sub(sent))
				p.st.mu.Unlock()
			}
			p.free.put(m.Data)
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			p.st.errors.Add(1)
			p.st.mu.Lock()
			if p.st.firstErr == nil {
				p.st.firstErr = err
			}
			p.st.mu.Unlock()
		}),
	)
	if err != nil {
		return nil, err
	}
	p.js = js
	return p, nil
}

// run publishes until the window ends and waits for the outstanding acks.
func (p *publisher) run(ctx context.Context) (measure.Result, error) {
	o := p.o
	now := time.Now()
	end := now.Add(o.warmup + o.duration)
	p.win.set(now.Add(o.warmup), end)
	var pacer measure.Pacer
	if o.rate > 0 {
		pacer = measure.NewPacer(now, o.rate)
	}
	var pubErr error
	for i := int64(0); ctx.Err() == nil; i++ {
		now := time.Now()
		sendAt := now
		if o.rate > 0 {
			due := pacer.At(i)
			if d := due.Sub(now); d > 0 {
				time.Sleep(d)
				now = time.Now()
			}
			sendAt = measure.ChargeFrom(due, now, measure.DefaultSlack)
		}
		if !now.Before(end) {
			break
		}
		b := p.free.get()
		_ = measure.Stamp(b, sendAt)
		// A long stall wait makes a full window block, like a full Kafka
		// producer buffer, instead of failing the publish.
		if _, err := p.js.PublishAsync(o.subject, b, jetstream.WithStallWait(o.drain)); err != nil {
			pubErr = fmt.Errorf("publish: %w", err)
			break
		}
	}
	select {
	case <-p.js.PublishAsyncComplete():
	case <-time.After(o.drain):
		if pubErr == nil {
			pubErr = fmt.Errorf("%d publishes unacknowledged after %v", p.js.PublishAsyncPending(), o.drain)
		}
	}

	res := measure.Result{Mode: o.mode, Target: o.url, RecordSize: o.size, TargetRate: o.rate}
	res.Throughput(p.st.records.Load(), p.st.bytes.Load(), time.Duration(p.win.end.Load()-p.win.start.Load()))
	res.Errors = p.st.errors.Load()
	res.TotalRecords = p.st.acked.Load()
	p.st.mu.Lock()
	res.Ack = measure.Summarize(p.st.ack)
	if pubErr == nil && p.st.firstErr != nil {
		pubErr = fmt.Errorf("%d publishes failed (first: %w)", res.Errors, p.st.firstErr)
	}
	p.st.mu.Unlock()
	return res, pubErr
}

func publish(ctx context.Context, nc *nats.Conn, o *options) (measure.Result, error) {
	p, err := newPublisher(nc, o)
	if err != nil {
		return measure.Result{}, err
	}
	if _, err := ensureStream(ctx, p.js, o); err != nil {
		return measure.Result{}, err
	}
	return p.run(ctx)
}

// subscribe reads the stream from the start with an ordered consumer.
func subscribe(ctx context.Context, nc *nats.Conn, o *options) (measure.Result, error) {
	res := measure.Result{Mode: "sub", Target: o.url}
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	s, err := js.Stream(ctx, o.stream)
	if err != nil {
		return res, fmt.Errorf("stream %s: %w", o.stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return res, fmt.Errorf("stream info: %w", err)
	}
	target := int64(info.State.Msgs)
	if o.count > 0 {
		target = o.count
	}
	if target == 0 {
		return res, fmt.Errorf("stream %s is empty", o.stream)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return res, fmt.Errorf("ordered consumer: %w", err)
	}
	var n, bytes, last atomic.Int64
	done := make(chan time.Time, 1)
	start := time.Now()
	last.Store(start.UnixNano())
	cc, err := cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		last.Store(now.UnixNano())
		bytes.Add(int64(len(m.Data())))
		if n.Add(1) == target {
			done <- now
		}
	})
	if err != nil {
		return res, fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var end time.Time
	var runErr error
	for end.IsZero() {
		select {
		case end = <-done:
		case <-ctx.Done():
			end, runErr = time.Now(), ctx.Err()
		case now := <-tick.C:
			if now.Sub(time.Unix(0, last.Load())) > 10*time.Second {
				end, runErr = now, fmt.Errorf("no messages for 10s after %d of %d", n.Load(), target)
			}
		}
	}
	res.Throughput(n.Load(), bytes.Load(), end.Sub(start))
	res.TotalRecords = res.Records
	return res, runErr
}

// e2e publishes at -rate while an ordered consumer, started at the
// stream's next sequence, takes now minus the stamp of each message.
func e2e(ctx context.Context, nc *nats.Conn, o *options) (measure.Result, error) {
	p, err := newPublisher(nc, o)
	if err != nil {
		return measure.Result{}, err
	}
	s, err := ensureStream(ctx, p.js, o)
	if err != nil {
		return measure.Result{}, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return measure.Result{}, fmt.Errorf("stream info: %w", err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   info.State.LastSeq + 1,
	})
	if err != nil {
		return measure.Result{}, fmt.Errorf("ordered consumer: %w", err)
	}
	var (
		mu   sync.Mutex
		lat  = measure.NewHistogram()
		seen atomic.Int64
		want atomic.Int64
		once sync.Once
		done = make(chan struct{})
	)
	// The publisher stores want and then checks; the consumer adds to seen
	// and then checks; one of the two always sees the other's write.
	check := func() {
		if w := want.Load(); w > 0 && seen.Load() >= w {
			once.Do(func() { close(done) })
		}
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		if sent, err := measure.ReadStamp(m.Data()); err == nil && p.win.contains(sent) {
			mu.Lock()
			lat.RecordDuration(now.Sub(sent))
			mu.Unlock()
		}
		seen.Add(1)
		check()
	})
	if err != nil {
		return measure.Result{}, fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()

	res, err := p.run(ctx)
	if acked := p.st.acked.Load(); acked > 0 {
		want.Store(acked)
		check()
		select {
		case <-done:
		case <-ctx.Done():
		case <-time.After(o.drain):
			if err == nil {
				err = fmt.Errorf("consumer saw %d of %d messages within %v", seen.Load(), acked, o.drain)
			}
		}
	}
	cc.Stop()
	mu.Lock()
	res.E2E = measure.Summarize(lat)
	mu.Unlock()
	return res, err
}
