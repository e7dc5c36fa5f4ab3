package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/cluster"
	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/replication"
	"github.com/weir-dev/weir/internal/storage"
)

// Partition is one partition of a topic: its log, the sequence state of the
// idempotent producers writing to it, and the readers waiting for data.
type Partition struct {
	topic *Topic
	index int32
	b     *Broker
	log   *storage.Log

	mu        sync.Mutex // serializes appends with their sequence checks
	producers map[int64]*producerState
	ongoing   map[int64]int64 // producer id -> first offset of its open transaction here
	aborted   []AbortedTxn    // aborted transactions, by marker offset
	stateGen  uint64          // bumped on every producer state change
	snapGen   uint64          // stateGen at the last snapshot

	// snapMu is held while a producer-state snapshot is written; deleted
	// (set under it) stops snapshots of a partition whose topic is gone, so
	// none can land in a re-created topic's directory.
	snapMu  sync.Mutex
	deleted bool

	hwMu sync.Mutex
	hwCh chan struct{} // closed when the high watermark moves

	// Cluster mode: the assignment from the controller, and the
	// partition's Raft group when this node is a replica (log is nil
	// otherwise).
	info   atomic.Pointer[cluster.Partition]
	rg     *replication.Group
	status atomic.Pointer[replication.Status]
	stale  bool // p.mu: rebuild the producer state before the next produce
	// replicated: a Raft group appends to the log and reports each batch
	// afterwards (applyAppended), so the producer state can trail the log
	// end; applied is the offset after the last batch it has followed.
	replicated bool
	applied    atomic.Int64
	// moveWait: no replica-move step before then (moveLoop only).
	moveWait time.Time
	// leaderSince: when this replica last became a ready leader (Unix ns).
	leaderSince atomic.Int64
}

// Index is the partition number.
func (p *Partition) Index() int32 { return p.index }

// Topic is the partition's topic.
func (p *Partition) Topic() *Topic { return p.topic }

// LeaderEpoch is the partition's current leader epoch. A single node stays
// leader of everything at epoch 0; in a cluster it is the Raft term.
func (p *Partition) LeaderEpoch() int32 {
	if !p.b.clustered() {
		return 0
	}
	_, epoch, _, _ := p.LeaderInfo()
	return epoch
}

// HighWatermark is the end of what consumers may read.
func (p *Partition) HighWatermark() int64 { return p.log.HighWatermark() }

// LastStableOffset is where read_committed consumers stop: the first
// offset of the oldest open transaction, or the high watermark.
func (p *Partition) LastStableOffset() int64 {
	hw := p.log.HighWatermark()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lsoLocked(hw)
}

func (p *Partition) lsoLocked(hw int64) int64 {
	lso := hw
	for _, first := range p.ongoing {
		lso = min(lso, first)
	}
	return lso
}

// LogStartOffset is the first offset still kept.
func (p *Partition) LogStartOffset() int64 { return p.log.LogStartOffset() }

// LogEndOffset is where the next record goes.
func (p *Partition) LogEndOffset() int64 { return p.log.LogEndOffset() }

// Size is the partition's size on disk.
func (p *Partition) Size() int64 { return p.log.Size() }

func partitionDir(dataDir, topic string, index int32) string {
	return filepath.Join(dataDir, topicsSubdir, fmt.Sprintf("%s-%d", topic, index))
}

func (b *Broker) openPartition(t *Topic, index int32) (*Partition, error) {
	p := b.newPartition(t, index)
	if err := p.openLog(p.onWritten, p.onDurable); err != nil {
		return nil, err
	}
	return p, nil
}

func (b *Broker) newPartition(t *Topic, index int32) *Partition {
	return &Partition{topic: t, index: index, b: b, producers: make(map[int64]*producerState), ongoing: make(map[int64]int64)}
}

// openLog opens the partition's log (hooks may be nil) and restores the
// producer state from it.
func (p *Partition) openLog(onWritten, onDurable func(int64)) error {
	b := p.b
	log, err := storage.Open(partitionDir(b.cfg.DataDir, p.topic.Name, p.index), storage.Options{
		Config:    p.topic.settings.Load().log,
		Clock:     b.clock,
		Logger:    b.logger,
		Syncer:    b.syncer,
		Buffers:   b.buffers,
		OnWritten: onWritten,
		OnDurable: onDurable,
	})
	if err != nil {
		return err
	}
	p.log = log
	if err := p.loadProducerState(); err != nil {
		log.Close()
		return err
	}
	return nil
}

// onDurable runs after an fsync. On a single node a durable write is a
// committed one, so the high watermark follows the durable offset (it never
// moves back, whatever the flush policy).
func (p *Partition) onDurable(offset int64) {
	p.log.SetHighWatermark(offset)
	p.notify()
}

// onWritten runs once appended data is in the segment files. Topics that
// acknowledge before fsync (flush.messages > 1) let readers see it then.
func (p *Partition) onWritten(offset int64) {
	if !p.topic.settings.Load().log.SyncsEveryAppend() {
		p.log.SetHighWatermark(offset)
		p.notify()
	}
}

// Changed returns a channel that is closed the next time the high watermark
// moves. Take it before reading, so no change between the read and the wait
// is missed.
func (p *Partition) Changed() <-chan struct{} {
	p.hwMu.Lock()
	defer p.hwMu.Unlock()
	if p.hwCh == nil {
		p.hwCh = make(chan struct{})
	}
	return p.hwCh
}

func (p *Partition) notify() {
	p.hwMu.Lock()
	if p.hwCh != nil {
		close(p.hwCh)
		p.hwCh = nil
	}
	p.hwMu.Unlock()
}

// ProduceResult is the outcome of appending one batch.
type ProduceResult struct {
	BaseOffset     int64
	LogAppendTime  int64 // -1 unless the topic uses LogAppendTime
	LogStartOffset int64
	// Local completes when the batch is durable on this node (acks=1),
	// Committed when it is committed (acks=all: on a single node the same,
	// in a cluster once a majority has it). Both nil when the answer need
	// not wait (a flush policy that acknowledges from the page cache).
	// BaseOffset is -1 until then when the offsets come from Raft: take
	// it from the completion.
	Local, Committed *Completion
}

// Produce validates batch and appends it. The batch's bytes are modified in
// place (offsets, epoch). Retries of an idempotent batch already written are
// answered with the original offsets and never written again.
func (p *Partition) Produce(batch []byte) (ProduceResult, error) {
	return p.produce(batch, false)
}

// ProduceBuilt is Produce for a batch the broker put together itself from
// records it validated before (a transform's outputs: records re-encoded
// from a module's output, or a stored batch passed on whole): its frame
// and checksum are checked, its records are not decompressed and walked
// again.
func (p *Partition) ProduceBuilt(batch []byte) (ProduceResult, error) {
	return p.produce(batch, true)
}

func (p *Partition) produce(batch []byte, built bool) (ProduceResult, error) {
	if p.topic.Name == OffsetsTopic || p.topic.Name == TransactionTopic {
		return ProduceResult{}, fmt.Errorf("%w: clients may not write to %s", ErrInternalTopic, p.topic.Name)
	}
	set := p.topic.settings.Load()
	if len(batch) > set.maxMessageBytes {
		return ProduceResult{}, fmt.Errorf("%w: batch of %d bytes exceeds max.message.bytes %d", ErrMessageTooLarge, len(batch), set.maxMessageBytes)
	}
	if size := record.PeekSize(batch); size >= record.HeaderSize && size < len(batch) {
		return ProduceResult{}, fmt.Errorf("%w: a produce request must carry exactly one record batch per partition", ErrInvalidRecord)
	}
	var h record.Header
	var err error
	if built {
		h, err = record.CheckFrame(batch)
	} else {
		h, err = record.Validate(batch, p.b.decomp, record.Limits{MaxDecompressedBytes: p.b.cfg.MaxDecompressedBytes})
	}
	switch {
	case errors.Is(err, record.ErrUnsupportedMagic):
		return ProduceResult{}, fmt.Errorf("%w: %v", ErrUnsupportedForFormat, err)
	case err != nil:
		return ProduceResult{}, fmt.Errorf("%w: %v", ErrCorruptMessage, err)
	case h.Control():
		return ProduceResult{}, fmt.Errorf("%w: clients may not write control batches", ErrInvalidRecord)
	case h.Transactional():
		if !h.Idempotent() {
			return ProduceResult{}, fmt.Errorf("%w: transactional batch without a producer id", ErrInvalidRecord)
		}
		if err := p.b.verifyTxnPartition(h.ProducerID, h.ProducerEpoch, p.topic.Name, p.index); err != nil {
			return ProduceResult{}, err
		}
	}
	if set.compact {
		if err := requireKeys(batch, p.b.decomp); err != nil {
			return ProduceResult{}, err
		}
	}
	now := p.b.clock.Now().UnixMilli()
	if !set.logAppendTime {
		if err := checkTimestamps(&h, now, set); err != nil {
			return ProduceResult{}, err
		}
	}
	res := ProduceResult{LogAppendTime: -1}
	var appendTime int64
	if set.logAppendTime {
		appendTime, res.LogAppendTime = now, now
	}
	if p.b.clustered() {
		return p.propose(batch, &h, appendTime, now)
	}

	ar, dup, err := p.appendChecked(batch, &h, appendTime, now)
	if err != nil {
		if errors.Is(err, storage.ErrClosed) {
			return ProduceResult{}, fmt.Errorf("%w: %s was deleted", ErrUnknownTopicOrPartition, p.name())
		}
		return ProduceResult{}, err
	}
	res.LogStartOffset = p.log.LogStartOffset()
	if dup != nil {
		// A retry of a batch already written: answer with its offsets. The
		// first copy may still be on its way to disk.
		res.BaseOffset = dup.baseOffset
		if set.log.SyncsEveryAppend() {
			c := durableCompletion(p.log.Durable(dup.lastOffset+1), dup.baseOffset)
			res.Local, res.Committed = c, c
		}
		return res, nil
	}
	res.BaseOffset = ar.BaseOffset
	if ar.Synced {
		c := durableCompletion(p.log.Durable(ar.LastOffset+1), ar.BaseOffset)
		res.Local, res.Committed = c, c
	}
	return res, nil
}

// appendChecked applies the idempotent producer's sequence rules and
// appends, atomically under p.mu. It returns the earlier batch instead when
// h is a retry of it.
func (p *Partition) appendChecked(batch []byte, h *record.Header, appendTime, now int64) (storage.AppendResult, *batchMeta, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var st *producerState
	if h.Idempotent() {
		st = p.producers[h.ProducerID]
		verdict, err := st.check(h)
		if err != nil {
			return storage.AppendResult{}, nil, err
		}
		if d := verdict.duplicate; d != nil {
			dup := *d
			return storage.AppendResult{}, &dup, nil
		}
	}
	ar, err := p.log.Append(batch, p.LeaderEpoch(), appendTime)
	if err != nil {
		if errors.Is(err, storage.ErrClosed) {
			return ar, nil, err
		}
		return ar, nil, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	if h.Idempotent() {
		if st == nil {
			st = newProducerState(h.ProducerEpoch)
			p.producers[h.ProducerID] = st
		}
		h.BaseOffset = ar.BaseOffset
		st.record(h, now)
		p.noteTxnLocked(st, h)
		p.stateGen++
	}
	return ar, nil, nil
}

// noteTxnLocked marks where a producer's transaction starts in this
// partition.
func (p *Partition) noteTxnLocked(st *producerState, h *record.Header) {
	if h.Transactional() && !h.Control() && st.txnFirst < 0 {
		st.txnFirst = h.BaseOffset
		p.ongoing[h.ProducerID] = h.BaseOffset
	}
}

// endTxnLocked applies a transaction marker at offset: the producer's open
// transaction here ends, and an abort is remembered for read_committed
// fetches.
func (p *Partition) endTxnLocked(pid int64, epoch int16, commit bool, offset int64) {
	st := p.producers[pid]
	if st == nil {
		st = newProducerState(epoch)
		p.producers[pid] = st
	}
	if epoch > st.epoch {
		st.epoch = epoch
		st.batches = st.batches[:0]
	}
	if st.txnFirst >= 0 {
		if !commit {
			p.aborted = append(p.aborted, AbortedTxn{ProducerID: pid, FirstOffset: st.txnFirst, LastOffset: offset})
		}
		st.txnFirst = -1
		delete(p.ongoing, pid)
	}
	p.stateGen++
}

// markerBatch builds the control batch that commits or aborts producer
// pid's transaction.
func markerBatch(pid int64, epoch int16, commit bool, coordinatorEpoch int32, ts int64) ([]byte, error) {
	typ := kmsg.ControlRecordKeyTypeAbort
	if commit {
		typ = kmsg.ControlRecordKeyTypeCommit
	}
	key := kmsg.ControlRecordKey{Version: 0, Type: typ}
	val := kmsg.EndTxnMarker{Version: 0, CoordinatorEpoch: coordinatorEpoch}
	return record.Build(record.BatchOptions{
		FirstTimestamp: ts, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: -1,
		Transactional: true, Control: true,
	}, []record.Record{{Key: key.AppendTo(nil), Value: val.AppendTo(nil)}})
}

// WriteMarker appends the commit or abort marker of producer pid's
// transaction (a control batch) and waits until it is durable. The
// partition's last stable offset moves past the transaction.
func (p *Partition) WriteMarker(pid int64, epoch int16, commit bool, coordinatorEpoch int32) error {
	batch, err := markerBatch(pid, epoch, commit, coordinatorEpoch, p.b.clock.Now().UnixMilli())
	if err != nil {
		return err
	}
	if p.b.clustered() {
		// Every replica, this one included, ends the transaction when the
		// marker reaches its log.
		if _, err := p.appendReplicated(batch); err != nil {
			return err
		}
		p.notify()
		return nil
	}
	p.mu.Lock()
	ar, err := p.log.Append(batch, p.LeaderEpoch(), 0)
	if err == nil {
		p.endTxnLocked(pid, epoch, commit, ar.BaseOffset)
	}
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: write transaction marker to %s: %v", ErrStorage, p.name(), err)
	}
	if !ar.Synced {
		if err := p.log.Sync(); err != nil {
			return fmt.Errorf("%w: %v", ErrStorage, err)
		}
	}
	w := p.log.Durable(ar.LastOffset + 1)
	<-w.Done()
	if err := w.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrStorage, err)
	}
	// The last stable offset may have moved without the high watermark.
	p.notify()
	return nil
}

// OpenTxn reports the first offset of producer pid's open transaction in
// this partition, if any (for DescribeProducers).
func (p *Partition) ProducerStates() []ProducerInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ProducerInfo, 0, len(p.producers))
	for id, st := range p.producers {
		info := ProducerInfo{ID: id, Epoch: st.epoch, LastTimestamp: st.lastTimestamp, TxnStartOffset: st.txnFirst, LastSequence: -1}
		if n := len(st.batches); n > 0 {
			info.LastSequence = st.batches[n-1].lastSeq
		}
		out = append(out, info)
	}
	return out
}

// ProducerInfo is one producer's state on a partition.
type ProducerInfo struct {
	ID             int64
	Epoch          int16
	LastSequence   int32
	LastTimestamp  int64
	TxnStartOffset int64
}

// requireKeys rejects records without a key, which a compacted topic
// could never clean up, as Kafka does.
func requireKeys(batch []byte, d *record.Decompressor) error {
	return record.ForEachRecord(batch, d, func(_ *record.Header, r *record.Record) error {
		if r.Key == nil {
			return fmt.Errorf("%w: compacted topic needs a key on every record (record %d has none)", ErrInvalidRecord, r.OffsetDelta)
		}
		return nil
	})
}

func checkTimestamps(h *record.Header, now int64, set *settings) error {
	if set.maxTSBefore < maxLong && h.FirstTimestamp < now-set.maxTSBefore {
		return fmt.Errorf("%w: timestamp %d is more than %d ms in the past", ErrInvalidTimestamp, h.FirstTimestamp, set.maxTSBefore)
	}
	if set.maxTSAfter < maxLong && h.MaxTimestamp > now+set.maxTSAfter {
		return fmt.Errorf("%w: timestamp %d is more than %d ms in the future", ErrInvalidTimestamp, h.MaxTimestamp, set.maxTSAfter)
	}
	return nil
}

// ReadResult is what a fetch of one partition returns.
type ReadResult struct {
	Batches          []byte
	HighWatermark    int64
	LastStableOffset int64
	LogStartOffset   int64
	// Aborted lists the aborted transactions overlapping the returned
	// batches, for read_committed consumers to skip.
	Aborted []AbortedTxn
}

// Read appends batches starting at offset to dst, up to maxBytes (at least
// one batch when minOne), never beyond the high watermark, or with
// readCommitted never beyond the last stable offset.
func (p *Partition) Read(dst []byte, offset int64, maxBytes int, minOne, readCommitted bool) (ReadResult, error) {
	if err := p.Serving(); err != nil {
		return ReadResult{HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1}, err
	}
	hw := p.log.HighWatermark()
	start := len(dst)
	out, err := p.log.Read(dst, offset, storage.ReadOptions{MaxBytes: maxBytes, MinOneBatch: minOne})
	if err == nil && p.rg != nil {
		out = append(out[:start], stripInternal(out[start:])...)
	}
	if hw2 := p.log.HighWatermark(); hw2 > hw {
		// The read may have seen data up to the newer mark; report it so the
		// client never sees records above the high watermark it is told.
		hw = hw2
	}
	p.mu.Lock()
	lso := p.lsoLocked(hw)
	res := ReadResult{Batches: out, HighWatermark: hw, LastStableOffset: lso, LogStartOffset: p.log.LogStartOffset()}
	if err == nil && readCommitted {
		res.Batches = out[:start+batchesBelow(out[start:], lso)]
		if upper := nextOffsetOf(res.Batches[start:]); upper > offset {
			for _, a := range p.aborted {
				if a.LastOffset >= offset && a.FirstOffset < upper {
					res.Aborted = append(res.Aborted, a)
				}
			}
		}
	}
	p.mu.Unlock()
	if errors.Is(err, storage.ErrOffsetOutOfRange) {
		return res, fmt.Errorf("%w: %v", ErrOffsetOutOfRange, err)
	}
	if err != nil {
		return res, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	return res, nil
}

// batchesBelow returns how many bytes of whole batches in b start below
// offset.
func batchesBelow(b []byte, offset int64) int {
	n := 0
	for n < len(b) && record.PeekBaseOffset(b[n:]) < offset {
		n += record.PeekSize(b[n:])
	}
	return n
}

// nextOffsetOf is the offset after the last batch in b (0 when empty).
func nextOffsetOf(b []byte) int64 {
	next := int64(0)
	for len(b) > 0 {
		next = record.PeekLastOffset(b) + 1
		b = b[record.PeekSize(b):]
	}
	return next
}

// OffsetForTimestamp finds the first offset whose record timestamp is at
// least ts. found is false when every record is older.
func (p *Partition) OffsetForTimestamp(ts int64) (offset, timestamp int64, found bool, err error) {
	r, err := p.log.OffsetForTimestamp(ts, p.b.decomp)
	if err != nil {
		return 0, 0, false, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	return r.Offset, r.Timestamp, r.Found, nil
}

// MaxTimestamp returns the offset and time of the newest-stamped record.
func (p *Partition) MaxTimestamp() (offset, timestamp int64, found bool) {
	r := p.log.MaxTimestamp()
	return r.Offset, r.Timestamp, r.Found
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch.
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) {
	e, end, ok := p.log.EndOffsetForEpoch(epoch)
	if !ok {
		return -1, -1
	}
	return e, end
}

// DeleteRecordsBefore moves the log start offset forward; offset -1 means
// the high watermark.
func (p *Partition) DeleteRecordsBefore(offset int64) (int64, error) {
	if offset == -1 {
		offset = p.log.HighWatermark()
	}
	start, err := p.log.DeleteRecordsBefore(offset)
	if errors.Is(err, storage.ErrOffsetOutOfRange) {
		return 0, fmt.Errorf("%w: %v", ErrOffsetOutOfRange, err)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	return start, nil
}

// loadProducerState restores producer sequence state: the newest snapshot
// that is intact and not ahead of the log (the last one, else the one
// before it), then every batch written after it.
func (p *Partition) loadProducerState() error {
	from := p.log.LogStartOffset()
	for _, name := range []string{snapshotName, prevSnapshotName} {
		off, producers, aborted, ok := p.readProducerSnapshot(name)
		if !ok {
			continue
		}
		p.producers, p.aborted, from = producers, aborted, max(off, from)
		for id, st := range producers {
			if st.txnFirst >= 0 {
				p.ongoing[id] = st.txnFirst
			}
		}
		break
	}
	now := p.b.clock.Now().UnixMilli()
	end := from
	defer func() { p.applied.Store(end) }()
	return p.log.ScanBatches(from, func(h *record.Header) error {
		if h.BaseOffset < from {
			return nil
		}
		end = h.LastOffset() + 1
		if !h.Idempotent() {
			return nil
		}
		st := p.producers[h.ProducerID]
		if st == nil {
			st = newProducerState(h.ProducerEpoch)
			p.producers[h.ProducerID] = st
		}
		if h.Control() {
			commit, err := p.markerType(h)
			if err != nil {
				return err
			}
			p.endTxnLocked(h.ProducerID, h.ProducerEpoch, commit, h.BaseOffset)
			return nil
		}
		st.record(h, max(h.MaxTimestamp, now))
		p.noteTxnLocked(st, h)
		return nil
	})
}

// readProducerSnapshot reads the snapshot file name if it is there, intact
// and not ahead of the log. One ahead of the log describes batches the log
// no longer has (a replica's uncommitted tail was cut): it is deleted, as
// it would pass the check again once the log grows back past it.
func (p *Partition) readProducerSnapshot(name string) (int64, map[int64]*producerState, []AbortedTxn, bool) {
	path := filepath.Join(p.log.Dir(), name)
	body, err := storage.ReadSealed(path)
	if os.IsNotExist(err) {
		return 0, nil, nil, false
	}
	var off int64
	var producers map[int64]*producerState
	var aborted []AbortedTxn
	if err == nil {
		off, producers, aborted, err = decodeProducerSnapshot(body)
	}
	if err != nil {
		p.b.logger.Warn("ignoring producer state snapshot", "partition", p.name(), "file", name, "err", err)
		return 0, nil, nil, false
	}
	if leo := p.log.LogEndOffset(); off > leo {
		p.b.logger.Warn("producer state snapshot is ahead of the log; removing it", "partition", p.name(), "file", name, "snapshot", off, "log_end", leo)
		err := os.Remove(path)
		if err == nil {
			err = storage.SyncDir(p.log.Dir())
		}
		if err != nil {
			p.b.logger.Warn("remove producer state snapshot", "partition", p.name(), "file", name, "err", err)
		}
		return 0, nil, nil, false
	}
	return off, producers, aborted, true
}

// markerType reads the control record of the marker batch h to learn
// whether it commits or aborts.
func (p *Partition) markerType(h *record.Header) (commit bool, err error) {
	buf, err := p.log.Read(nil, h.BaseOffset, storage.ReadOptions{MaxBytes: 1, MinOneBatch: true, UpToLogEnd: true})
	if err != nil {
		return false, err
	}
	err = record.ForEachRecord(buf, p.b.decomp, func(_ *record.Header, r *record.Record) error {
		var key kmsg.ControlRecordKey
		if err := key.ReadFrom(r.Key); err != nil {
			return fmt.Errorf("%w: control record key: %v", ErrCorruptMessage, err)
		}
		commit = key.Type == kmsg.ControlRecordKeyTypeCommit
		return nil
	})
	return commit, err
}

// stateEndLocked is the offset up to which the producer state describes
// the log. On a single node every append updates the state under p.mu, so
// that is the log end; a replica's state trails its log by the batch its
// Raft group has written but not yet reported. A snapshot labelled with
// the log end there would claim a batch it lacks, and loading it would
// skip that batch for good.
func (p *Partition) stateEndLocked() int64 {
	if p.replicated {
		return p.applied.Load()
	}
	return p.log.LogEndOffset()
}

// snapshotProducers writes the producer state if it changed and everything
// it describes is durable (a snapshot must never mention batches a crash
// could still lose).
func (p *Partition) snapshotProducers(force bool) error {
	p.snapMu.Lock()
	defer p.snapMu.Unlock()
	if p.deleted {
		return nil
	}
	p.mu.Lock()
	if p.stateGen == p.snapGen && !force {
		p.mu.Unlock()
		return nil
	}
	end := p.stateEndLocked()
	if p.log.DurableOffset() < end {
		p.mu.Unlock()
		return nil
	}
	gen := p.stateGen
	body := encodeProducerSnapshot(end, p.producers, p.aborted)
	p.mu.Unlock()
	// The one before is kept: when a replica's log is cut behind the last
	// snapshot, the one before it is usually still good, and spares a
	// replay of the whole log.
	dir := p.log.Dir()
	if err := os.Rename(filepath.Join(dir, snapshotName), filepath.Join(dir, prevSnapshotName)); err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := storage.WriteFileAtomic(dir, snapshotName, storage.Seal(body)); err != nil {
		return err
	}
	p.mu.Lock()
	p.snapGen = gen
	p.mu.Unlock()
	return nil
}

// expireProducers forgets producers idle for longer than the expiration.
func (p *Partition) expireProducers(before int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, st := range p.producers {
		if st.lastTimestamp < before && st.txnFirst < 0 {
			delete(p.producers, id)
			p.stateGen++
		}
	}
	// Aborted spans wholly before the log start can no longer be fetched.
	start := p.log.LogStartOffset()
	keep := p.aborted[:0]
	for _, a := range p.aborted {
		if a.LastOffset >= start {
			keep = append(keep, a)
		}
	}
	if len(keep) != len(p.aborted) {
		p.stateGen++
	}
	p.aborted = keep
}

// compact cleans the partition (latest record per key) when enough of it
// was written since the last pass, never touching data above the last
// stable offset. Aborted transactional records go; each producer's last
// batch stays (empty if need be) so sequence state survives a restart.
func (p *Partition) compact() {
	set := p.topic.settings.Load()
	upTo := p.LastStableOffset()
	if p.log.DirtyRatio(upTo) < set.cleanableRatio {
		return
	}
	stats, err := p.log.Compact(storage.CompactOptions{
		UpTo:            upTo,
		DeleteRetention: set.deleteRetention,
		Aborted:         p.isAborted,
		RetainBatch:     p.isProducersLastBatch,
		// A replica's log is its Raft log: compaction keeps every entry
		// (emptied if need be), so a replica that catches up replays
		// the compacted log and the Raft view never moves.
		KeepEntries:  p.b.clustered(),
		Decompressor: p.b.decomp,
	})
	switch {
	case errors.Is(err, storage.ErrCompactConflict):
	case err != nil:
		p.b.logger.Error("compaction", "partition", p.name(), "err", err)
	case stats.RecordsRemoved > 0 || stats.SegmentsMerged() > 0:
		p.b.logger.Info("compacted", "partition", p.name(), "records_removed", stats.RecordsRemoved,
			"tombstones_removed", stats.TombstonesRemoved, "bytes_before", stats.BytesBefore, "bytes_after", stats.BytesAfter)
	}
}

// isAborted reports whether a transactional batch at offset belongs to an
// aborted transaction of producer pid.
func (p *Partition) isAborted(pid, offset int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.aborted {
		if a.ProducerID == pid && a.FirstOffset <= offset && offset <= a.LastOffset {
			return true
		}
	}
	return false
}

// isProducersLastBatch reports whether h is the newest batch of a producer
// the partition still tracks.
func (p *Partition) isProducersLastBatch(h *record.Header) bool {
	if !h.Idempotent() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.producers[h.ProducerID]
	return st != nil && len(st.batches) > 0 && st.batches[len(st.batches)-1].baseOffset == h.BaseOffset
}

// markDeleted stops producer-state snapshots for good, waiting for one in
// progress; the topic's directory is about to go.
func (p *Partition) markDeleted() {
	p.snapMu.Lock()
	p.deleted = true
	p.snapMu.Unlock()
}

func (p *Partition) name() string { return fmt.Sprintf("%s-%d", p.topic.Name, p.index) }

func (p *Partition) close() error {
	if err := p.log.Sync(); err != nil {
		p.log.Close()
		return err
	}
	if err := p.snapshotProducers(true); err != nil {
		p.b.logger.Warn("write producer state snapshot", "partition", p.name(), "err", err)
	}
	return p.log.Close()
}
