// Package storage keeps partition logs on disk: segment files of Kafka v2
// record batches stored as produced, sparse offset and time indexes, group
// commit to stable storage, crash recovery that truncates torn tails, and
// retention. It knows nothing about Kafka requests or topics; a Log is one
// partition's ordered, durable sequence of batches.
//
// Lock order: Log.mu, then Log.segMu, then segment.imu.
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
	// PreallocateBytes is how far ahead of the write position segment files
	// are filled with zeros, so that appends overwrite allocated blocks and
	// fdatasync need not commit a new file size. 0 (the default) disables
	// it: zero-filling costs a second page-cache write of every byte and
	// competes with appends for the file, which measured worse overall.
	PreallocateBytes int64
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
	// OnDurable is called, outside the log's locks, after an fsync made
	// everything before offset durable.
	OnDurable func(offset int64)
}

// boundary is a batch boundary: offset next starts at pos in seg.
type boundary struct {
	next int64
	seg  *segment
	pos  int64
}

// Log is one partition's segmented log.
type Log struct {
	dir    string
	clock  clock.Clock
	logger *slog.Logger
	syncer *Syncer
	onDur  func(int64)
	cfg    atomic.Pointer[Config]

	mu         sync.Mutex
	active     *segment
	leo        int64
	pending    []boundary // appended but not yet visible, oldest first
	dirty      []*segment // segments with writes not yet synced
	dirDirty   bool       // a segment file was created since the last dir sync
	unflushed  int64      // records written since the last sync
	syncQueued bool
	flushTimer clock.Timer
	durable    int64
	waiters    []*DurableWait
	failed     error
	closed     bool
	epochs     []EpochEntry
	bg         sync.WaitGroup // extensions and segment finalization

	segMu sync.RWMutex
	segs  []*segment

	visible  atomic.Pointer[boundary] // high watermark
	logEnd   atomic.Pointer[boundary]
	logStart atomic.Int64
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
	l := &Log{dir: dir, clock: opts.Clock, logger: opts.Logger.With("log", filepath.Base(dir)), syncer: opts.Syncer, onDur: opts.OnDurable}
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
}

// Append writes one validated batch at the end of the log, assigning its
// offsets by rewriting the batch header in place (the caller's slice is
// modified). epoch is recorded as the batch's partition leader epoch. If
// logAppendTime is non-zero the batch is stamped with it. The batch is in
// the page cache when Append returns; use Durable to wait for the fsync.
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
	if l.closed {
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
	for seg.extending && end > seg.extStart {
		// Zeros are being written where this batch would go; wait so the
		// two writes cannot interleave.
		done := seg.extendDone
		l.mu.Unlock()
		<-done
		l.mu.Lock()
		if l.active != seg || l.closed {
			return AppendResult{}, ErrClosed
		}
	}
	if _, err := seg.f.WriteAt(batch, pos); err != nil {
		return AppendResult{}, l.failLocked(fmt.Errorf("write segment %d: %w", seg.base, err))
	}
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
	l.maybeExtendLocked(cfg, seg)
	l.scheduleFlushLocked(cfg)
	return AppendResult{BaseOffset: base, LastOffset: h.LastOffset()}, nil
}

func (l *Log) markDirtyLocked(seg *segment) {
	for _, d := range l.dirty {
		if d == seg {
			return
		}
	}
	l.dirty = append(l.dirty, seg)
}

// scheduleFlushLocked applies the flush policy after a write.
func (l *Log) scheduleFlushLocked(cfg *Config) {
	if cfg.SyncsEveryAppend() || l.unflushed >= cfg.FlushMessages {
		l.requestSyncLocked()
		return
	}
	if cfg.FlushInterval > 0 && l.flushTimer == nil {
		l.flushTimer = l.clock.AfterFunc(cfg.FlushInterval, func() {
			l.mu.Lock()
			l.flushTimer = nil
			l.requestSyncLocked()
			l.mu.Unlock()
		})
	}
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
	l.requestSyncLocked()
	l.mu.Unlock()
	<-w.Done()
	return w.Err()
}

// syncNow fsyncs every dirty segment (and the directory when files were
// created), then marks the log durable up to what was written before the
// fsync began. Appends that arrive meanwhile wait for the next round: that
// is the group commit.
func (l *Log) syncNow() {
	l.mu.Lock()
	l.syncQueued = false
	if l.failed != nil || l.closed && len(l.dirty) == 0 {
		l.mu.Unlock()
		return
	}
	target := l.leo
	segs := l.dirty
	l.dirty = nil
	dirDirty := l.dirDirty
	l.dirDirty = false
	l.unflushed = 0
	if l.flushTimer != nil {
		l.flushTimer.Stop()
		l.flushTimer = nil
	}
	l.mu.Unlock()

	var err error
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
	l.mu.Unlock()
	// Readers may see the data before writers hear it is durable, so a
	// producer that was acknowledged can always read its own write.
	if l.onDur != nil {
		l.onDur(durable)
	}
	for _, w := range done {
		close(w.done)
	}
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

// rollLocked seals the active segment and starts a new one at the log end.
func (l *Log) rollLocked(cfg *Config) error {
	old := l.active
	seg, err := l.createSegment(l.leo)
	if err != nil {
		return err
	}
	l.segMu.Lock()
	l.segs = append(l.segs, seg)
	l.active = seg
	l.segMu.Unlock()
	seg.rollAt = l.clock.Now().Add(cfg.SegmentAge)
	l.dirDirty = true
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		l.finalize(old)
	}()
	return nil
}

func (l *Log) createSegment(base int64) (*segment, error) {
	f, err := os.OpenFile(filepath.Join(l.dir, segmentName(base)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	return newSegment(l.dir, base, f), nil
}

// finalize turns a segment that is no longer active into a sealed one: its
// zero tail is cut off and its index written, so a restart trusts it
// without scanning.
func (l *Log) finalize(s *segment) {
	l.mu.Lock()
	for s.extending {
		done := s.extendDone
		l.mu.Unlock()
		<-done
		l.mu.Lock()
	}
	l.mu.Unlock()
	if err := l.seal(s); err != nil {
		l.logger.Warn("seal segment; its index will be rebuilt at the next start", "segment", s.base, "err", err)
	}
}

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
	return WriteFileAtomic(l.dir, indexName(s.base), s.encodeIndex())
}

// zeros is a read-only source for preallocation writes.
var zeros = make([]byte, 1<<20)

// maybeExtendLocked zero-fills the active segment ahead of the write
// position in the background when the pre-written region runs low.
func (l *Log) maybeExtendLocked(cfg *Config, seg *segment) {
	chunk := cfg.PreallocateBytes
	if chunk <= 0 || seg.extending || l.closed {
		return
	}
	size := seg.size.Load()
	if seg.alloc-size >= chunk || size >= cfg.SegmentBytes {
		return
	}
	// Leave the appender runway below the zeroed region: if the file has
	// outgrown the pre-written part, start the zeros a little further on.
	start := seg.alloc
	if start < size {
		start = size + chunk/4
	}
	end := min(start+chunk, cfg.SegmentBytes)
	if end <= start {
		return
	}
	seg.extending = true
	seg.extStart = start
	seg.extendDone = make(chan struct{})
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		err := extend(seg.f, start, end)
		l.mu.Lock()
		if err == nil {
			seg.alloc = end
		} else {
			l.logger.Warn("preallocate segment", "segment", seg.base, "err", err)
		}
		seg.extending = false
		close(seg.extendDone)
		l.mu.Unlock()
	}()
}

func extend(f *os.File, start, end int64) error {
	for pos := start; pos < end; {
		n := min(int64(len(zeros)), end-pos)
		if _, err := f.WriteAt(zeros[:n], pos); err != nil {
			return err
		}
		pos += n
	}
	return datasync(f)
}

// Close syncs and closes the log, leaving a clean-shutdown marker so the
// next Open trusts the indexes instead of scanning.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
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
	l.mu.Unlock()
	l.bg.Wait()
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
		if e := s.f.Close(); e != nil && err == nil {
			err = e
		}
	}
	return err
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
