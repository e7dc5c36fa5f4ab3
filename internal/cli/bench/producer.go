package bench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/cli/bench/measure"
)

// window is the measured interval. Records whose send time falls before
// start are warmup; sending stops at end.
type window struct{ start, end time.Time }

func (w window) contains(t time.Time) bool { return !t.Before(w.start) && t.Before(w.end) }

// produceStats gathers what the producers' promises see.
type produceStats struct {
	records  atomic.Int64 // acked, sent inside the window
	bytes    atomic.Int64
	produced atomic.Int64 // acked, including warmup
	errors   atomic.Int64

	mu       sync.Mutex
	ack      *measure.Histogram
	firstErr error
}

func newProduceStats() *produceStats { return &produceStats{ack: measure.NewHistogram()} }

// recordPool recycles records and their values: at several hundred
// thousand records a second, allocating 1 KiB each would make the client's
// garbage collector part of the measurement.
type recordPool struct {
	pool sync.Pool
}

func newRecordPool(size int) *recordPool {
	filler := measure.Filler(size, 0x5eed)
	rp := &recordPool{}
	rp.pool.New = func() any {
		v := make([]byte, size)
		copy(v, filler)
		return &kgo.Record{Value: v}
	}
	return rp
}

func (rp *recordPool) get() *kgo.Record { return rp.pool.Get().(*kgo.Record) }

// put resets the fields the client filled in; the value is kept.
func (rp *recordPool) put(r *kgo.Record) {
	*r = kgo.Record{Value: r.Value}
	rp.pool.Put(r)
}

// produceLoad runs o.producers clients against one topic until w.end, then
// flushes them. With o.rate > 0 each producer sends rate/producers records
// a second from its own pacer.
func produceLoad(ctx context.Context, o *options, w window, st *produceStats) error {
	pool := newRecordPool(o.recordSize)
	errc := make(chan error, o.producers)
	for i := range o.producers {
		go func() { errc <- produceOne(ctx, o, w, st, pool, i) }()
	}
	var first error
	for range o.producers {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func produceOne(ctx context.Context, o *options, w window, st *produceStats, pool *recordPool, idx int) error {
	opts := o.producerOpts()
	txn := o.txnInterval > 0
	if txn {
		opts = append(opts, kgo.TransactionalID(fmt.Sprintf("weir-bench-%d-%d", os.Getpid(), idx)))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("producer client: %w", err)
	}
	defer cl.Close()
	var txnStart time.Time
	commit := func() error {
		if err := cl.Flush(ctx); err != nil {
			return fmt.Errorf("flush transaction: %w", err)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return fmt.Errorf("commit transaction: %w", err)
		}
		return nil
	}
	if txn {
		if err := cl.BeginTransaction(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		txnStart = time.Now()
	}

	promise := func(r *kgo.Record, err error) {
		now := time.Now()
		defer pool.put(r)
		sent, serr := measure.ReadStamp(r.Value)
		if err != nil || serr != nil {
			st.errors.Add(1)
			st.mu.Lock()
			if st.firstErr == nil {
				st.firstErr = err
			}
			st.mu.Unlock()
			return
		}
		st.produced.Add(1)
		if !w.contains(sent) {
			return
		}
		st.records.Add(1)
		st.bytes.Add(int64(len(r.Value)))
		st.mu.Lock()
		st.ack.RecordDuration(now.Sub(sent))
		st.mu.Unlock()
	}

	var pacer measure.Pacer
	paced := o.rate > 0
	if paced {
		pacer = measure.NewPacer(time.Now(), o.rate/float64(o.producers))
	}
	for i := int64(0); ctx.Err() == nil; i++ {
		now := time.Now()
		sendAt := now
		if paced {
			due := pacer.At(i)
			if d := due.Sub(now); d > 0 {
				// Sleeps overshoot (about 1.1 ms here); the sends due
				// meanwhile go out back to back on the next turns.
				time.Sleep(d)
				now = time.Now()
			}
			sendAt = measure.ChargeFrom(due, now, measure.DefaultSlack)
		}
		if !now.Before(w.end) {
			break
		}
		if txn && now.Sub(txnStart) >= o.txnInterval {
			// Commit every interval, as a stream processor would.
			if err := commit(); err != nil {
				return err
			}
			if err := cl.BeginTransaction(); err != nil {
				return fmt.Errorf("begin transaction: %w", err)
			}
			txnStart = time.Now()
		}
		r := pool.get()
		_ = measure.Stamp(r.Value, sendAt) // validated: record-size >= 8
		cl.Produce(ctx, r, promise)
	}

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.drainTimeout)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		return fmt.Errorf("flush producer: %w", err)
	}
	if txn {
		if err := cl.EndTransaction(fctx, kgo.TryCommit); err != nil {
			return fmt.Errorf("commit transaction: %w", err)
		}
	}
	return nil
}

// result turns the stats into a Result over the window.
func (st *produceStats) result(o *options, mode string, w window) measure.Result {
	r := measure.Result{Mode: mode, Target: o.brokers, RecordSize: o.recordSize, TargetRate: o.rate}
	r.Throughput(st.records.Load(), st.bytes.Load(), w.end.Sub(w.start))
	r.Errors = st.errors.Load()
	r.TotalRecords = st.produced.Load()
	st.mu.Lock()
	r.Ack = measure.Summarize(st.ack)
	st.mu.Unlock()
	return r
}

// err reports produce failures as an error after the result is printed.
func (st *produceStats) err() error {
	if n := st.errors.Load(); n > 0 {
		st.mu.Lock()
		defer st.mu.Unlock()
		return fmt.Errorf("%d records failed to produce (first: %v)", n, st.firstErr)
	}
	return nil
}
