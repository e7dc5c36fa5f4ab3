// Package storage keeps partition logs on disk: segment files of Kafka v2
// record batches stored as produced, sparse offset and time indexes, group
// commit to stable storage, crash recovery that truncates torn tails, and
// retention and key-based compaction. It knows nothing about Kafka requests
// or topics; a Log is one partition's ordered, durable sequence of batches.
//
// Lock order: Log.cleanMu, then Log.swapMu, then Log.syncMu, then Log.mu,
// then Log.segMu, then segment.imu; Log.recentMu and readahead.mu are leaves.
package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-dev/weir/internal/clock"
	"github.com/weir-dev/weir/internal/record"
)

// Config holds the per-log settings; topic configs map onto it.
type Config struct {
	SegmentBytes       int64         // roll the active segment past this size
	SegmentAge         time.Duration // roll the active segment once it is this old
	IndexIntervalBytes int           // bytes of batches between index entries
	RetentionBytes     int64         // delete old segments past this total; <0 keeps all
	RetentionAge       time.Duration // delete segments whose newest record is older; <0 keeps all
	// FlushMessages is how many records may be written before an fsync.
	// 1 (the default) syncs every append before it is acknowledged.
	FlushMessages int64
	// FlushInterval forces an fsync this long after the first unsynced
	// write when FlushMessages > 1; 0 leaves it to FlushMessages alone.
	FlushInterval time.Duration
}

// DefaultConfig is what a log uses when a topic sets nothing.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       128 << 20,
		SegmentAge:         7 * 24 * time.Hour,
		IndexIntervalBytes: 4096,
		RetentionBytes:     -1,
		RetentionAge:       7 * 24 * time.Hour,
		FlushMessages:      1,
	}
}

// SyncsEveryAppend reports whether every append is made durable before it
// may be acknowledged.
func (c *Config) SyncsEveryAppend() bool { return c.FlushMessages <= 1 }

// Errors a Log returns.
var (
	ErrOffsetOutOfRange = errors.New("offset out of range")
	ErrClosed           = errors.New("log closed")
	// ErrLogFailed wraps the I/O error that stopped a log. Once an fsync
	// has failed, the kernel may have dropped the dirty pages, so the log
	// refuses all further writes instead of pretending.
	ErrLogFailed = errors.New("log failed")
)

// Options wire a Log to its environment.
type Options struct {
	Config Config
	Clock  clock.Clock
	Logger *slog.Logger
	Syncer *Syncer
	// Buffers supplies aligned memory for writes and reads; logs of one
	// broker share it. nil gives the log a pool of its own.
	Buffers *BufferPool
	// OnWritten is called, outside the log's locks, once everything
	// before offset has been written to the segment files (not necessarily
	// fsynced). Logs that acknowledge from memory make data visible here.
	OnWritten func(offset int64)
	// OnDurable is called, outside the log's locks, after an fsync made
	// everything before offset durable.
	OnDurable func(offset int64)
}

// maxTailBytes bounds the unwritten data a log buffers; appends wait for
// the syncer beyond it.
const maxTailBytes = 16 << 20

// boundary is a batch boundary: offset next starts at pos in seg.
type boundary struct {
	next int64
	seg  *segment
	pos  int64
}

// Log is one partition's segmented log.
//
// Appends copy batches into a block-aligned write-behind buffer (the tail of
// the active segment); the syncer writes it out with direct I/O and fsyncs.
// The file always holds correct bytes for [0, tailPos); tail holds
// [tailPos, active.size), starting with the last partial block already
// written, which each write-out rewrites whole.
type Log struct {
	dir     string
	clock   clock.Clock
	logger  *slog.Logger
	syncer  *Syncer
	buffers *BufferPool
	onWrit  func(int64)
	onDur   func(int64)
	cfg     atomic.Pointer[Config]

	// cleanMu makes compaction passes run one at a time.
	cleanMu sync.Mutex
	// swapMu is held by everything that renames or removes segment files
	// while the log is open (the cleaner's swap, retention, DeleteRecords,
	// truncation, Close), so file names and the segment list agree.
	swapMu sync.Mutex
	// cleanedTo is the cleaner checkpoint: the first offset no compaction
	// pass has cleaned. Written under swapMu.
	cleanedTo atomic.Int64
	// swapHook, set only by tests, is called at each step of a compaction
	// swap; returning true stops the swap there as a crash would (no
	// clean-up), so tests can reopen the files left at that step.
	swapHook func(step string) bool

	syncMu sync.Mutex // one write-out and fsync round at a time

	mu         sync.Mutex
	flushed    *sync.Cond // signalled after every write-out (mu)
	active     *segment
	leo        int64
	tail       []byte     // aligned; unwritten bytes of the active segment
	tailPos    int64      // file position of tail[0], block-aligned
	tailDirty  bool       // tail holds bytes not yet written out
	spare      []byte     // a free aligned buffer for the next tail
	outq       []outChunk // tails of rolled segments awaiting write-out
	outqBytes  int        // bytes in outq
	toSeal     []*segment // written-out rolled segments to seal after an fsync
	pending    []boundary // appended but not yet visible, oldest first
	dirty      []*segment // segments with writes not yet fsynced
	dirDirty   bool       // a segment file was created since the last dir sync
	unflushed  int64      // records appended since the last fsync
	needFsync  bool       // the next round must fsync
	syncQueued bool
	flushTimer clock.Timer
	durable    int64
	waiters    []*DurableWait
	failed     error
	closing    bool // Close has begun: no more appends
	closed     bool
	epochs     []EpochEntry
	prevTerm   uint64         // term of the Raft entry before the first kept one
	bg         sync.WaitGroup // syncs run without a syncer

	segMu sync.RWMutex
	segs  []*segment

	recentMu sync.RWMutex
	recent   *recentChunk // the last data written out, kept for tailing readers
	ra       readahead

	visible  atomic.Pointer[boundary] // high watermark
	written  atomic.Pointer[boundary] // end of what the files hold
	logEnd   atomic.Pointer[boundary]
	logStart atomic.Int64
}

// recentChunk is the data of the last write-out, kept in memory so that
// consumers at the end of the log read it without going to the disk. Its
// buffer is immutable while it is the recent chunk.
type recentChunk struct {
	seg        *segment
	pos        int64  // file position of buf[0]
	buf        []byte // file bytes [pos, pos+len(buf))
	from       int64  // position of the first whole batch in buf
	fromOffset int64  // offset of that batch
}

// outChunk is buffered data of a segment waiting to be written out.
type outChunk struct {
	seg  *segment
	pos  int64 // block-aligned file position of buf[0]
	buf  []byte
	seal bool // the segment is no longer active: seal it once durable
}

// Files in a log directory besides segments and indexes.
const (
	cleanMarkerName = "clean-shutdown"
	logStartName    = "log-start-offset"
)

// Open opens (creating if needed) the log in dir, recovering it if it was
// not closed cleanly: torn or corrupt tails are truncated, missing or
// damaged indexes rebuilt, and what was done is logged.
func Open(dir string, opts Options) (*Log, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	if opts.Buffers == nil {
		opts.Buffers = NewBufferPool()
	}
	l := &Log{dir: dir, clock: opts.Clock, logger: opts.Logger.With("log", filepath.Base(dir)), syncer: opts.Syncer,
		buffers: opts.Buffers, onWrit: opts.OnWritten, onDur: opts.OnDurable}
	l.flushed = sync.NewCond(&l.mu)
	l.ra = readahead{pool: l.buffers, limit: l.readableEnd}
	cfg := opts.Config
	l.cfg.Store(&cfg)
	if err := l.recover(); err != nil {
		l.closeFiles()
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	return l, nil
}

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// Config returns the log's current settings.
func (l *Log) Config() Config { return *l.cfg.Load() }

// SetConfig changes the log's settings; they apply from the next append or
// retention pass.
func (l *Log) SetConfig(c Config) { l.cfg.Store(&c) }

// LogStartOffset is the first offset still kept.
func (l *Log) LogStartOffset() int64 { return l.logStart.Load() }

// LogEndOffset is the offset the next appended record will get.
func (l *Log) LogEndOffset() int64 { return l.logEnd.Load().next }

// HighWatermark is the end of what readers may see.
func (l *Log) HighWatermark() int64 { return l.visible.Load().next }

// Failed returns the I/O error that stopped the log, or nil.
func (l *Log) Failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// DurableOffset is the end of what has been fsynced.
func (l *Log) DurableOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable
}

// AppendResult tells where an appended batch went.
type AppendResult struct {
	BaseOffset int64
	LastOffset int64
	// Index is the batch's Raft index.
	Index uint64
	// Synced says the flush policy in force for this append fsyncs it
	// promptly, so waiting for Durable is bounded.
	Synced bool
}

// Append writes one validated batch at the end of the log, assigning its
// offsets by rewriting the batch header in place (the caller's slice is
// modified). epoch is recorded as the batch's partition leader epoch. If
// logAppendTime is non-zero the batch is stamped with it. The batch is in
// memory when Append returns; readers see it once the high watermark passes
// it, and Durable waits for the fsync.
func (l *Log) Append(batch []byte, epoch int32, logAppendTime int64) (AppendResult, error) {
	h, err := record.ParseHeader(batch)
	if err != nil {
		return AppendResult{}, err
	}
	if h.Size() != len(batch) {
		return AppendResult{}, fmt.Errorf("append: batch length %d, have %d bytes", h.Size(), len(batch))
	}
	cfg := l.cfg.Load()
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.tail)+l.outqBytes >= maxTailBytes && l.failed == nil && !l.closing {
		l.requestSyncLocked()
		l.flushed.Wait() // the syncer is behind: hold the producer back
	}
	if l.closing {
		return AppendResult{}, ErrClosed
	}
	if l.failed != nil {
		return AppendResult{}, l.failed
	}
	if err := l.maybeRollLocked(cfg, &h); err != nil {
		return AppendResult{}, l.failLocked(err)
	}
	seg := l.active
	base := l.leo
	record.SetBaseOffset(batch, base)
	record.SetLeaderEpoch(batch, epoch)
	if logAppendTime != 0 {
		record.SetLogAppendTime(batch, logAppendTime)
	}
	h.BaseOffset, h.LeaderEpoch = base, epoch
	if logAppendTime != 0 {
		h.MaxTimestamp = logAppendTime
	}
	pos := seg.size.Load()
	end := pos + int64(len(batch))
	l.tail = l.growTail(l.tail, len(l.tail)+len(batch))
	copy(l.tail[len(l.tail)-len(batch):], batch)
	l.tailDirty = true
	seg.track(&h, pos, cfg.IndexIntervalBytes)
	seg.size.Store(end)
	l.leo = h.NextOffset()
	b := &boundary{next: l.leo, seg: seg, pos: end}
	l.logEnd.Store(b)
	l.pending = append(l.pending, *b)
	if n := len(l.epochs); n == 0 || l.epochs[n-1].Epoch != epoch {
		l.epochs = append(l.epochs, EpochEntry{Epoch: epoch, StartOffset: base})
	}
	l.markDirtyLocked(seg)
	l.unflushed += int64(h.NumRecords)
	l.scheduleFlushLocked(cfg)
	return AppendResult{BaseOffset: base, LastOffset: h.LastOffset(), Index: l.lastIndexLocked(), Synced: cfg.SyncsEveryAppend()}, nil
}

// growTail returns buf extended to n bytes, moving it to a larger aligned
// buffer when needed.
func (l *Log) growTail(buf []byte, n int) []byte {
	if n <= cap(buf) {
		return buf[:n]
	}
	nb := l.buffers.Get(max(n, 2*cap(buf)))
	copy(nb, buf)
	if buf != nil {
		l.buffers.Put(buf)
	}
	return nb[:n]
}

func (l *Log) markDirtyLocked(seg *segment) {
	for _, d := range l.dirty {
		if d == seg {
			return
		}
	}
	l.dirty = append(l.dirty, seg)
}

// scheduleFlushLocked applies the flush policy after a write: every append
// is written out promptly (so it becomes readable); fsyncs follow the policy.
func (l *Log) scheduleFlushLocked(cfg *Config) {
	if cfg.SyncsEveryAppend() || l.unflushed >= cfg.FlushMessages {
		l.needFsync = true
	} else if cfg.FlushInterval > 0 && l.flushTimer == nil {
		l.flushTimer = l.clock.AfterFunc(cfg.FlushInterval, func() {
			l.mu.Lock()
			l.flushTimer = nil
			l.needFsync = true
			l.requestSyncLocked()
			l.mu.Unlock()
		})
	}
	l.requestSyncLocked()
}

func (l *Log) requestSyncLocked() {
	if l.syncQueued || l.closed {
		return
	}
	l.syncQueued = true
	if l.syncer == nil {
		l.bg.Add(1)
		go func() {
			defer l.bg.Done()
			l.syncNow()
		}()
		return
	}
	l.syncer.schedule(l)
}

// Sync makes everything appended so far durable and returns once it is.
func (l *Log) Sync() error {
	l.mu.Lock()
	w := l.durableLocked(l.leo)
	l.needFsync = true
	l.requestSyncLocked()
	l.mu.Unlock()
	<-w.Done()
	return w.Err()
}

// syncNow writes out buffered data (direct I/O, whole blocks) and, if the
// flush policy asks for it, fsyncs every dirty segment and the directory,
// then marks the log durable up to what was buffered when the round began.
// Appends that arrive meanwhile go to a fresh buffer and wait for the next
// round: that is the group commit.
func (l *Log) syncNow() {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	l.syncQueued = false
	if l.failed != nil || (l.closed && len(l.dirty) == 0 && !l.tailDirty && len(l.outq) == 0) {
		l.mu.Unlock()
		return
	}
	chunks := l.outq
	l.outq, l.outqBytes = nil, 0
	if l.tailDirty {
		chunks = append(chunks, l.takeTailLocked())
	}
	target := l.leo
	targetB := l.logEnd.Load()
	prevB := l.written.Load()
	doFsync := l.needFsync
	var segs []*segment
	var dirDirty bool
	if doFsync {
		l.needFsync = false
		segs, l.dirty = l.dirty, nil
		dirDirty, l.dirDirty = l.dirDirty, false
		l.unflushed = 0
		if l.flushTimer != nil {
			l.flushTimer.Stop()
			l.flushTimer = nil
		}
	}
	l.mu.Unlock()

	err := l.writeOut(chunks)

	var keep *outChunk
	if n := len(chunks); err == nil && n > 0 && !chunks[n-1].seal {
		keep = &chunks[n-1]
	}
	var retired []byte
	if keep != nil {
		retired = l.keepRecent(keep, prevB)
	}

	l.mu.Lock()
	for i, c := range chunks {
		if c.seal {
			l.toSeal = append(l.toSeal, c.seg)
		}
		if keep == nil || i != len(chunks)-1 {
			l.buffers.Put(c.buf)
		}
	}
	if retired != nil {
		if l.spare == nil && cap(retired) <= 4<<20 {
			l.spare = retired[:0]
		} else {
			l.buffers.Put(retired)
		}
	}
	if err != nil {
		l.failLocked(err)
		l.flushed.Broadcast()
		l.mu.Unlock()
		return
	}
	l.written.Store(targetB)
	l.flushed.Broadcast()
	l.mu.Unlock()
	if l.onWrit != nil {
		l.onWrit(target)
	}
	if !doFsync {
		return
	}

	l.segMu.RLock() // keeps the files open while they sync
	for _, s := range segs {
		if s.removed {
			continue
		}
		if e := datasync(s.f); e != nil && err == nil {
			err = fmt.Errorf("sync segment %d: %w", s.base, e)
		}
	}
	l.segMu.RUnlock()
	if err == nil && dirDirty {
		err = SyncDir(l.dir)
	}

	l.mu.Lock()
	if err != nil {
		l.failLocked(err)
		l.mu.Unlock()
		return
	}
	if target > l.durable {
		l.durable = target
	}
	done := l.takeWaitersLocked()
	durable := l.durable
	seal := l.toSeal
	l.toSeal = nil
	l.mu.Unlock()
	// Readers may see the data before writers hear it is durable, so a
	// producer that was acknowledged can always read its own write.
	if l.onDur != nil {
		l.onDur(durable)
	}
	for _, w := range done {
		close(w.done)
	}
	for _, s := range seal {
		if err := l.seal(s); err != nil {
			l.logger.Warn("seal segment; its index will be rebuilt at the next start", "segment", s.base, "err", err)
		}
	}
}

// keepRecent makes the active segment's chunk just written the recent
// chunk and returns the buffer of the one it replaces, now unreferenced.
// prev is where written data ended before this round: the first batch
// boundary in the new chunk.
func (l *Log) keepRecent(c *outChunk, prev *boundary) []byte {
	var rc *recentChunk
	if c != nil {
		rc = &recentChunk{seg: c.seg, pos: c.pos, buf: c.buf, from: c.pos, fromOffset: c.seg.base}
		if prev.seg == c.seg {
			rc.from, rc.fromOffset = prev.pos, prev.next
		} else if c.pos != 0 {
			rc = nil // no known batch boundary in it
		}
	}
	l.recentMu.Lock()
	old := l.recent
	l.recent = rc
	l.recentMu.Unlock()
	if old == nil {
		return nil
	}
	return old.buf
}

// takeTailLocked hands the active tail to a write-out and starts a new
// tail holding a copy of the last partial block, which the next write-out
// rewrites with whatever follows it.
func (l *Log) takeTailLocked() outChunk {
	c := outChunk{seg: l.active, pos: l.tailPos, buf: l.tail}
	n := len(l.tail)
	keep := n % blockSize
	next := l.spare
	l.spare = nil
	if next == nil {
		next = l.buffers.Get(blockSize)
	}
	next = next[:keep]
	copy(next, l.tail[n-keep:])
	l.tail = next
	l.tailPos += int64(n - keep)
	l.tailDirty = false
	return c
}

// writeOut writes chunks in order, each padded with zeros to whole blocks.
func (l *Log) writeOut(chunks []outChunk) error {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	for _, c := range chunks {
		if c.seg.removed {
			continue
		}
		n := len(c.buf)
		padded := int(alignUp(int64(n)))
		buf := c.buf[:padded]
		clear(buf[n:])
		if err := c.seg.writeAt(buf, c.pos); err != nil {
			return fmt.Errorf("write segment %d: %w", c.seg.base, err)
		}
	}
	return nil
}

// failLocked puts the log in the failed state and releases every waiter
// with the error.
func (l *Log) failLocked(err error) error {
	if l.failed == nil {
		l.failed = fmt.Errorf("%w: %w", ErrLogFailed, err)
		l.logger.Error("log failed; refusing further writes", "err", err)
	}
	for _, w := range l.waiters {
		w.err = l.failed
		close(w.done)
	}
	l.waiters = nil
	l.flushed.Broadcast() // appends waiting for buffer space must see it
	return l.failed
}

// DurableWait completes when a log is durable up to an offset.
type DurableWait struct {
	offset int64
	done   chan struct{}
	err    error
}

// Done is closed when the wait is over.
func (w *DurableWait) Done() <-chan struct{} { return w.done }

// Err says why the offset will never become durable (after Done).
func (w *DurableWait) Err() error { return w.err }

// Durable returns a wait that completes once every offset before offset is
// fsynced.
func (l *Log) Durable(offset int64) *DurableWait {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durableLocked(offset)
}

// SyncTo is Durable for a caller that needs offset on disk now whatever
// the flush policy: it schedules an fsync round if one is needed.
func (l *Log) SyncTo(offset int64) *DurableWait {
	l.mu.Lock()
	defer l.mu.Unlock()
	if offset > l.durable && l.failed == nil && !l.closed {
		l.needFsync = true
		l.requestSyncLocked()
	}
	return l.durableLocked(offset)
}

func (l *Log) durableLocked(offset int64) *DurableWait {
	w := &DurableWait{offset: offset, done: make(chan struct{})}
	switch {
	case l.failed != nil:
		w.err = l.failed
		close(w.done)
	case offset <= l.durable:
		close(w.done)
	case l.closed:
		w.err = ErrClosed
		close(w.done)
	default:
		l.waiters = append(l.waiters, w)
	}
	return w
}

func (l *Log) takeWaitersLocked() []*DurableWait {
	var done []*DurableWait
	keep := l.waiters[:0]
	for _, w := range l.waiters {
		if w.offset <= l.durable {
			done = append(done, w)
		} else {
			keep = append(keep, w)
		}
	}
	clear(l.waiters[len(keep):])
	l.waiters = keep
	return done
}

// SetHighWatermark makes everything before offset visible to readers. It
// never moves backwards (truncation resets it) and never past the log end.
// offset must fall on a batch boundary; otherwise the boundary below it is
// used.
func (l *Log) SetHighWatermark(offset int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := 0
	for i < len(l.pending) && l.pending[i].next <= offset {
		i++
	}
	if i == 0 {
		return
	}
	b := l.pending[i-1]
	l.visible.Store(&b)
	n := copy(l.pending, l.pending[i:])
	clear(l.pending[n:])
	l.pending = l.pending[:n]
}

// maybeRollLocked starts a new segment when the active one is full, old
// enough, or cannot address the next batch.
func (l *Log) maybeRollLocked(cfg *Config, h *record.Header) error {
	seg := l.active
	size := seg.size.Load()
	if size == 0 {
		return nil
	}
	now := l.clock.Now()
	switch {
	case size+int64(h.Size()) > cfg.SegmentBytes:
	case cfg.SegmentAge > 0 && !now.Before(seg.rollAt):
	case l.leo+int64(h.LastOffsetDelta)-seg.base > 1<<31-1:
	case size+int64(h.Size()) > 1<<32-1:
	default:
		return nil
	}
	return l.rollLocked(cfg)
}

// rollLocked starts a new segment at the log end. The old segment's
// buffered tail is queued for write-out, and the segment is sealed (cut to
// size, index written) once that is durable.
func (l *Log) rollLocked(cfg *Config) error {
	old := l.active
	seg, err := l.createSegment(l.leo)
	if err != nil {
		return err
	}
	seg.firstIndex = l.lastIndexLocked() + 1
	if l.tailDirty {
		c := outChunk{seg: old, pos: l.tailPos, buf: l.tail, seal: true}
		l.outq = append(l.outq, c)
		l.outqBytes += len(c.buf)
		l.tail = nil
	} else {
		l.toSeal = append(l.toSeal, old)
		l.tail = l.tail[:0]
	}
	l.tailPos, l.tailDirty = 0, false
	l.segMu.Lock()
	l.segs = append(l.segs, seg)
	l.active = seg
	l.segMu.Unlock()
	seg.rollAt = l.clock.Now().Add(cfg.SegmentAge)
	l.dirDirty = true
	l.needFsync = true // so the old segment gets sealed soon
	return nil
}

func (l *Log) createSegment(base int64) (*segment, error) {
	f, err := os.OpenFile(filepath.Join(l.dir, segmentName(base)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	seg, err := newSegment(l.dir, base, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return seg, nil
}

// seal turns a durable segment that is no longer active into a sealed one:
// the block padding of direct writes is cut off and its index written, so a
// restart trusts it without scanning.
func (l *Log) seal(s *segment) error {
	l.segMu.RLock() // retention must not close the file meanwhile
	defer l.segMu.RUnlock()
	if s.removed {
		return nil
	}
	if err := s.f.Truncate(s.size.Load()); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	if err := datasync(s.f); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := WriteFileAtomic(l.dir, indexName(s.base), s.encodeIndex()); err != nil {
		return err
	}
	s.sealed.Store(true)
	return nil
}

// Close syncs and closes the log, leaving a clean-shutdown marker so the
// next Open trusts the indexes instead of scanning.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return nil
	}
	l.closing = true // appends fail from here, so the final sync covers all
	l.flushed.Broadcast()
	failed := l.failed
	l.mu.Unlock()
	var err error
	if failed == nil {
		err = l.Sync()
	}
	l.mu.Lock()
	l.closed = true
	if l.flushTimer != nil {
		l.flushTimer.Stop()
	}
	for _, w := range l.waiters {
		w.err = ErrClosed
		close(w.done)
	}
	l.waiters = nil
	active := l.active
	leo := l.leo
	l.flushed.Broadcast()
	l.mu.Unlock()
	l.bg.Wait()
	l.ra.wait()
	// A compaction swap in progress finishes first; one that starts later
	// sees closing and gives up.
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	if err == nil && failed == nil && active != nil {
		err = l.seal(active)
		if err == nil {
			err = WriteFileAtomic(l.dir, cleanMarkerName, Seal([]byte(strconv.FormatInt(leo, 10))))
		}
	}
	if cerr := l.closeFiles(); err == nil {
		err = cerr
	}
	return err
}

func (l *Log) closeFiles() error {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	var err error
	for _, s := range l.segs {
		s.removed = true
		if e := s.close(); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// readableEnd is how much of seg readers may see now.
func (l *Log) readableEnd(seg *segment) int64 {
	b := l.visible.Load()
	switch {
	case b.seg == seg:
		return b.pos
	case seg.base < b.seg.base:
		return seg.size.Load()
	}
	return 0
}

// Epochs returns the leader epochs the log holds and the first offset of
// each, oldest first.
func (l *Log) Epochs() []EpochEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]EpochEntry(nil), l.epochs...)
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch at or
// below epoch and the offset where the next epoch begins (the log end for
// the latest). ok is false when the log holds no epoch that old.
func (l *Log) EndOffsetForEpoch(epoch int32) (int32, int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.epochs), func(i int) bool { return l.epochs[i].Epoch > epoch })
	if i == 0 {
		return -1, -1, false
	}
	if i == len(l.epochs) {
		return l.epochs[i-1].Epoch, l.leo, true
	}
	return l.epochs[i-1].Epoch, l.epochs[i].StartOffset, true
}

// Size is the number of bytes of batches the log holds.
func (l *Log) Size() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size.Load()
	}
	return n
}

// SegmentCount is the number of segment files.
func (l *Log) SegmentCount() int {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return len(l.segs)
}

func parseBase(name, suffix string) (int64, bool) {
	if !strings.HasSuffix(name, suffix) {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(name, suffix), 10, 64)
	return n, err == nil && n >= 0
}
