package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-dev/weir/internal/hub"
	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/transform"
)

// runner runs one transform on one input partition.
type runner struct {
	e         *Engine
	def       hub.Definition
	partition int32
	module    *transform.Module
	cancel    context.CancelFunc
	finished  chan struct{}
	d         *record.Decompressor
	outs      *outputs

	// Progress, read by report from the engine's goroutine.
	offset, end   atomic.Int64
	in, out, errs atomic.Int64
	isFailed      atomic.Bool
	mu            sync.Mutex
	lastErr       string
	lastReport    time.Time
	lastIn        int64
}

// maxReadBytes bounds one read of the input.
const maxReadBytes = 1 << 20

// finishTimeout bounds how long a stopping runner keeps finishing the
// batches it started.
const finishTimeout = 30 * time.Second

func newRunner(e *Engine, d hub.Definition, partition int32, m *transform.Module, cancel context.CancelFunc) *runner {
	return &runner{e: e, def: d, partition: partition, module: m, cancel: cancel, finished: make(chan struct{}), lastReport: time.Now(),
		outs: newOutputs(e.cfg.Source)}
}

func (r *runner) stop() { r.cancel() }

func (r *runner) done() bool {
	select {
	case <-r.finished:
		return true
	default:
		return false
	}
}

func (r *runner) failed() bool { return r.isFailed.Load() }

func (r *runner) setErr(err error) {
	r.mu.Lock()
	r.lastErr = err.Error()
	r.mu.Unlock()
}

// report writes the runner's status.
func (r *runner) report(ctx context.Context) {
	state := "running"
	switch {
	case r.failed():
		state = "failed"
	case r.done():
		state = "stopped"
	}
	now := time.Now()
	r.mu.Lock()
	in := r.in.Load()
	rate := float64(in-r.lastIn) / max(now.Sub(r.lastReport).Seconds(), 1e-3)
	r.lastIn, r.lastReport = in, now
	s := hub.Status{Transform: r.def.Name, Partition: r.partition, Node: r.e.cfg.NodeID, State: state,
		Offset: r.offset.Load(), End: r.end.Load(), RecordsIn: in, RecordsOut: r.out.Load(), Errors: r.errs.Load(),
		RateIn: rate, LastError: r.lastErr, Updated: now}
	r.mu.Unlock()
	r.e.report(ctx, s)
}

func (r *runner) log(line string) {
	r.e.hub.PutLog(r.def.Name, hub.LogLine{Time: time.Now(), Partition: r.partition, Node: r.e.cfg.NodeID, Line: line})
}

func (r *runner) fail(ctx context.Context, err error) {
	r.isFailed.Store(true)
	r.setErr(err)
	r.log("stopped: " + err.Error())
	r.e.logger.Warn("transform stopped", "transform", r.def.Name, "partition", r.partition, "err", err)
	r.report(ctx)
}

// run processes the partition until ctx ends, leadership moves away, or
// the error policy stops it.
func (r *runner) run(ctx context.Context) {
	defer close(r.finished)
	defer r.cancel()
	r.d = record.NewDecompressor()
	defer r.d.Close()

	inst, err := r.instantiate(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.fail(ctx, err) // the module cannot start: it stays failed
		}
		return
	}
	offset, err := r.resume(ctx, inst)
	if err != nil {
		// The catalog or the group coordinator is not reachable yet
		// (a cluster still electing): the engine starts the runner
		// again at its next pass.
		inst.Close(ctx)
		r.setErr(err)
		return
	}
	defer func() { inst.Close(context.Background()) }()
	r.offset.Store(offset)
	backoff := time.Duration(0)
	// inflight are the chunks whose outputs are on their way (and whose
	// progress is then committed, in order, by their goroutines) while the
	// module runs over the next reads. They are settled oldest first when
	// there are too many, when the input runs dry, and when the runner
	// stops (even if told to stop, so a clean shutdown or a pause repeats
	// nothing). A chunk that failed sends the runner back to its start:
	// those after it are dropped (their outputs may be written again: at
	// least once).
	var inflight []*chunk
	settleTo := func(keep int) error {
		for len(inflight) > keep {
			c := inflight[0]
			inflight = inflight[1:]
			<-c.done
			if c.err != nil {
				for _, later := range inflight {
					<-later.done
				}
				inflight = nil
				offset = c.from
				return c.err
			}
			r.out.Add(int64(c.outs))
			r.offset.Store(c.next)
		}
		return nil
	}
	defer func() { settleTo(0) }()
	for ctx.Err() == nil {
		changed, err := r.e.cfg.Source.Changed(r.def.Input, r.partition)
		if err != nil {
			return // not led here any more
		}
		res, err := r.e.cfg.Source.Read(r.def.Input, r.partition, offset, maxReadBytes)
		if errors.Is(err, ErrOffsetOutOfRange) && offset < res.LogStartOffset {
			r.log(fmt.Sprintf("offsets %d to %d were deleted by retention before they were processed", offset, res.LogStartOffset-1))
			offset = res.LogStartOffset
			continue
		}
		if err != nil {
			return // leadership moved; the engine restarts us where we lead
		}
		r.end.Store(res.HighWatermark)
		if len(res.Data) == 0 {
			if err := settleTo(0); err != nil {
				if !r.retryAfter(ctx, err, &backoff) {
					return
				}
				continue
			}
			select {
			case <-ctx.Done():
			case <-changed:
			}
			continue
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
		c, err := r.processBatches(wctx, &inst, offset, res)
		cancel()
		if err != nil {
			if serr := settleTo(0); serr != nil {
				err = serr // go back to the earlier failure
			}
			if !r.retryAfter(ctx, err, &backoff) {
				return
			}
			continue
		}
		if !c.settled {
			// This chunk's outputs go after the last chunk's are
			// handed over; if some of those went through the client,
			// after they land, so that no partition gets records out
			// of order.
			var prev *chunk
			if len(inflight) > 0 {
				prev = inflight[len(inflight)-1]
				if viaClient, _ := prev.handedOver(); viaClient {
					if serr := settleTo(0); serr != nil {
						if !r.retryAfter(ctx, serr, &backoff) {
							return
						}
						continue
					}
					prev = nil
				}
			}
			r.send(ctx, c, prev, true)
			inflight = append(inflight, c)
		}
		offset = c.next
		if serr := settleTo(maxInFlight); serr != nil {
			if !r.retryAfter(ctx, serr, &backoff) {
				return
			}
			continue
		}
		backoff = 0
	}
}

// maxInFlight bounds the chunks sent and not yet settled.
const maxInFlight = 2

// retryAfter handles a failed chunk: a stop by the error policy fails the
// runner (false); anything else (outputs not written, progress not saved)
// is retried from the chunk's start after a growing pause.
func (r *runner) retryAfter(ctx context.Context, err error, backoff *time.Duration) bool {
	if errors.Is(err, errStop) {
		r.fail(ctx, err)
		return false
	}
	r.setErr(err)
	*backoff = min(max(2**backoff, 100*time.Millisecond), 5*time.Second)
	select {
	case <-ctx.Done():
	case <-time.After(*backoff):
	}
	return true
}

// resume finds where to start: an aggregate's saved state (restored into
// inst), else the committed progress, else the start offset of the deploy.
func (r *runner) resume(ctx context.Context, inst *transform.Instance) (int64, error) {
	if inst.Kind() == transform.KindAggregate {
		st, ok, err := r.e.hub.LoadState(ctx, r.def.Name, r.partition)
		if err != nil {
			return 0, err
		}
		if ok {
			return st.Offset, inst.Restore(ctx, st.Data)
		}
	}
	o, ok, err := r.e.hub.Committed(ctx, r.def, r.partition)
	if err != nil {
		return 0, err
	}
	if ok {
		return o, nil
	}
	return r.def.StartOffsets[r.partition], nil
}

func (r *runner) instantiate(ctx context.Context) (*transform.Instance, error) {
	cfg := transform.Config{Input: r.def.Input, Outputs: r.def.Outputs, Params: r.def.Params}
	return r.module.Instantiate(ctx, cfg, r.log)
}

// errStop marks a failure the error policy says to stop on.
var errStop = errors.New("stopped by the error policy")

// chunk is one read's outputs on their way to the output topics: the
// runner commits next once every output is acknowledged, and meanwhile
// runs the module over the next read.
type chunk struct {
	from, next int64
	outs       int
	list       sendList      // the outputs, until sent
	sent       chan struct{} // closed once they are handed over
	done       chan struct{} // closed once they landed and progress is committed
	sendErr    error
	viaClient  bool  // some outputs went through the Kafka client
	err        error // why it failed, once done
	settled    bool  // aggregates: written and committed already
}

// processBatches runs the module over the batches read and collects the
// outputs for the caller to send. An aggregate's chunk is
// written, its state saved and its progress committed before it returns.
func (r *runner) processBatches(ctx context.Context, inst **transform.Instance, from int64, res Batches) (*chunk, error) {
	o := r.outs
	o.reset()
	next := from
	aborted := map[int64]int64{} // producer id -> first aborted offset
	for _, a := range res.Aborted {
		aborted[a.ProducerID] = a.FirstOffset
	}
	data := res.Data
	for len(data) >= record.HeaderSize {
		h, err := record.ParseHeader(data)
		if err != nil || h.Size() > len(data) {
			return nil, fmt.Errorf("input batch at %d: %v", next, err)
		}
		batch := data[:h.Size()]
		data = data[h.Size():]
		if h.LastOffset() < from {
			continue
		}
		next = h.NextOffset()
		if h.Control() || h.NumRecords == 0 {
			if h.Control() && h.Transactional() {
				delete(aborted, h.ProducerID) // the marker ends the transaction
			}
			continue
		}
		if first, ok := aborted[h.ProducerID]; ok && h.Transactional() && h.BaseOffset >= first {
			continue
		}
		results, whole, err := (*inst).ProcessBatchRefs(ctx, batch, r.d)
		r.in.Add(int64(h.NumRecords))
		if err == nil {
			err = r.collect(*inst, batch, results, whole)
		} else if ctx.Err() == nil {
			// The whole batch failed (a trap, the budget, a module
			// error): a fresh instance, then the batch again one record
			// at a time, so that the policy applies to the records
			// that fail and not to their neighbours.
			r.log("batch at offset " + strconv.FormatInt(h.BaseOffset, 10) + " failed: " + err.Error())
			if r.def.OnError == hub.OnErrorStop {
				return nil, fmt.Errorf("%w: %v", errStop, err)
			}
			var fresh *transform.Instance
			if fresh, err = r.restart(ctx, *inst); err == nil {
				*inst = fresh
				err = r.isolate(ctx, inst, batch)
			}
		}
		if err != nil {
			return nil, err
		}
		if (*inst).Kind() == transform.KindAggregate {
			// An aggregate saves its state after every batch, so a
			// fresh instance can always start from the state before
			// the batch it failed on.
			break
		}
	}
	c := &chunk{from: from, next: next, outs: o.count, list: o.finish()}
	if (*inst).Kind() != transform.KindAggregate {
		return c, nil // sent by the caller
	}
	r.send(ctx, c, nil, false)
	if <-c.done; c.err != nil {
		return nil, c.err
	}
	data, err := (*inst).Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: aggregate snapshot: %v", errStop, err)
	}
	if err := r.e.hub.SaveState(ctx, r.def.Name, r.partition, hub.State{Offset: next, Digest: r.def.Digest, Data: data}); err != nil {
		return nil, fmt.Errorf("save aggregate state: %w", err)
	}
	if err := r.e.hub.Commit(ctx, r.def, r.partition, next); err != nil {
		return nil, fmt.Errorf("commit progress: %w", err)
	}
	r.out.Add(int64(c.outs))
	c.settled = true
	return c, nil
}

// send hands a chunk's outputs to their partitions on a goroutine of its
// own (validating and appending them costs about as much as running the
// module), which then waits for them to land and, if commit, commits the
// chunk's progress once prev (the chunk before, if any) has committed its.
func (r *runner) send(ctx context.Context, c, prev *chunk, commit bool) {
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	c.sent, c.done = make(chan struct{}), make(chan struct{})
	list := c.list
	c.list = sendList{}
	go func() {
		defer close(c.done)
		defer cancel()
		var wait func(context.Context) error
		wait, c.viaClient, c.sendErr = list.send(octx, r.e.cfg.Source, r.e.hub.Kafka())
		close(c.sent)
		err := c.sendErr
		if err == nil {
			err = wait(octx)
		}
		if err != nil {
			err = fmt.Errorf("write outputs: %w", err)
		}
		if prev != nil {
			<-prev.done
			if prev.err != nil && err == nil {
				err = fmt.Errorf("an earlier chunk failed: %w", prev.err)
			}
		}
		if err == nil && commit {
			if err = r.e.hub.Commit(octx, r.def, r.partition, c.next); err != nil {
				err = fmt.Errorf("commit progress: %w", err)
			}
		}
		c.err = err
	}()
}

// handedOver waits until the chunk's outputs are appended (or on their way
// through the client), and says whether any went through the client.
func (c *chunk) handedOver() (viaClient bool, err error) {
	<-c.sent
	return c.viaClient, c.sendErr
}

// collect turns a batch's results into output records, and its failed
// records into dead letters (or a stop). whole: the module kept every
// record for output 0, and results are to be had from ExpandWhole.
func (r *runner) collect(inst *transform.Instance, batch []byte, results []transform.Output, whole bool) error {
	if r.passThrough(inst, batch, results, whole) {
		return nil
	}
	if whole {
		results = inst.ExpandWhole()
	}
	if err := inst.ResolveKept(results); err != nil {
		return err
	}
	for _, o := range results {
		if o.Err != "" {
			r.errs.Add(1)
			if r.def.OnError == hub.OnErrorStop {
				return fmt.Errorf("%w: record %d: %s", errStop, o.SourceOffset, o.Err)
			}
			if _, err := r.deadLetters(batch, o.SourceOffset, o.Err); err != nil {
				return err
			}
			continue
		}
		r.outs.add(r.def.Outputs[o.Output], o.Timestamp, o.Key, o.Value, o.Headers)
	}
	return nil
}

// passThrough sends a batch whose every record the module kept, to one
// output, as the batch it is (still compressed, if it was) rather than
// record by record, when that is the same thing: its records have
// consecutive offsets and producer timestamps, and they all land on one
// output partition. whole: the module said so of the batch (results are
// empty), and the keys' lengths come from the record table.
func (r *runner) passThrough(inst *transform.Instance, batch []byte, results []transform.Output, whole bool) bool {
	h, err := record.ParseHeader(batch)
	if err != nil || h.LogAppendTime() || len(batch) > maxOutputBatch {
		return false
	}
	out := 0
	if !whole {
		if len(results) != int(h.NumRecords) || int(h.LastOffsetDelta) != len(results)-1 {
			return false
		}
		for k, o := range results {
			if !o.Kept || o.Output != results[0].Output || o.SourceOffset != h.BaseOffset+int64(k) {
				return false
			}
		}
		out = results[0].Output
	}
	topic := r.def.Outputs[out]
	keyless := false
	if r.outs.partitions(topic) > 1 {
		// Keys decide the partitions: only keyless records stay
		// together.
		if whole {
			keyless = inst.WholeKeyless()
		} else if inst.ResolveKept(results) == nil {
			keyless = true
			for _, o := range results {
				keyless = keyless && o.Key == nil
			}
		}
	}
	return r.outs.addBatch(topic, batch, int(h.NumRecords), keyless)
}

// isolate runs a batch that failed as a whole one record at a time. A
// record that fails again is skipped or dead-lettered, and the module
// restarted; an aggregate's fresh instance first replays the records of
// the batch that went through, so its state misses only the failed ones.
func (r *runner) isolate(ctx context.Context, inst **transform.Instance, batch []byte) error {
	info, recs, err := transform.Records(batch, r.d)
	if err != nil {
		return err
	}
	var done []byte
	ndone := 0
	for _, rec := range recs {
		one := info
		one.NumRecords = 1
		results, err := (*inst).Process(ctx, one, rec)
		if err == nil {
			if err := r.collect(*inst, batch, results, false); err != nil {
				return err
			}
			done = append(done, rec...)
			ndone++
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		off := transform.SourceOffset(info, rec)
		r.errs.Add(1)
		r.log(fmt.Sprintf("record %d failed: %v", off, err))
		if _, err := r.deadLetters(batch, off, err.Error()); err != nil {
			return err
		}
		fresh, err := r.restart(ctx, *inst)
		if err != nil {
			return err
		}
		*inst = fresh
		if (*inst).Kind() == transform.KindAggregate && ndone > 0 {
			replay := info
			replay.NumRecords = int32(ndone)
			if _, err := (*inst).Process(ctx, replay, done); err != nil {
				return fmt.Errorf("%w: replaying the records before a failed one: %v", errStop, err)
			}
		}
	}
	return nil
}

// restart replaces a broken instance; an aggregate gets back its last
// saved state.
func (r *runner) restart(ctx context.Context, old *transform.Instance) (*transform.Instance, error) {
	old.Close(ctx)
	inst, err := r.instantiate(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: restart the module: %v", errStop, err)
	}
	if inst.Kind() == transform.KindAggregate {
		st, ok, err := r.e.hub.LoadState(ctx, r.def.Name, r.partition)
		if err != nil {
			inst.Close(ctx)
			return nil, err
		}
		if ok {
			if err := inst.Restore(ctx, st.Data); err != nil {
				inst.Close(ctx)
				return nil, err
			}
		}
	}
	return inst, nil
}

// deadLetters sends the batch's record at offset (every record with
// offset -1) to the dead-letter topic, if that is the policy, with the
// error in its headers, and returns how many there were.
func (r *runner) deadLetters(batch []byte, offset int64, msg string) (int, error) {
	n := 0
	err := record.ForEachRecord(batch, r.d, func(h *record.Header, rec *record.Record) error {
		off := h.BaseOffset + int64(rec.OffsetDelta)
		if offset >= 0 && off != offset {
			return nil
		}
		n++
		if r.def.OnError != hub.OnErrorDeadLetter {
			return nil
		}
		hdrs := append(rec.Headers[:len(rec.Headers):len(rec.Headers)],
			record.RecordHeader{Key: "weir.error", Value: []byte(msg)},
			record.RecordHeader{Key: "weir.transform", Value: []byte(r.def.Name)},
			record.RecordHeader{Key: "weir.source", Value: []byte(fmt.Sprintf("%s/%d/%d", r.def.Input, r.partition, off))})
		r.outs.add(r.def.DeadLetter, h.FirstTimestamp+rec.TimestampDelta, rec.Key, rec.Value, hdrs)
		return nil
	})
	return n, err
}

func cloneOrNil(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
