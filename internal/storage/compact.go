package storage

import (
	"bufio"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/weir-dev/weir/internal/record"
)

// Key-based compaction (cleanup.policy=compact), after Kafka's log cleaner.
//
// A pass takes the sealed segments that end at or below a bound (never the
// active segment), oldest first. Those that end at or below the cleaner
// checkpoint were cleaned by an earlier pass (the clean section, in which
// every key appears once); the rest are dirty. The pass maps every key in
// the dirty section to its highest offset, then rewrites all of the
// segments, clean and dirty, keeping a keyed record only if no later record
// has its key, and streams the surviving batches into new segments of at
// most segment.bytes, which replace the old ones in one crash-safe swap
// (compact_swap.go). The checkpoint then moves to the end of what was
// cleaned.

// ErrCompactConflict says a compaction pass was abandoned because a segment
// it was cleaning changed meanwhile (retention or DeleteRecords removed it,
// a truncation cut it). Nothing was changed; the next pass starts over.
var ErrCompactConflict = errors.New("compaction conflicts with a concurrent change to the log")

// CompactOptions configure one compaction pass.
type CompactOptions struct {
	// UpTo bounds the pass: only sealed segments that end at or below it
	// are cleaned, so nothing at or above it is touched. The broker passes
	// min(last stable offset, high watermark); the log never goes past
	// its own high watermark either.
	UpTo int64
	// DeleteRetention is delete.retention.ms. The first pass that keeps a
	// tombstone stamps its batch with a delete horizon of now plus this
	// (KIP-534); a later pass at or after the horizon removes the
	// tombstone if it is still the latest record for its key. So a
	// tombstone lives at least this long after the cleaner first saw it.
	DeleteRetention time.Duration
	// Aborted reports whether the transactional batch of producerID that
	// starts at offset belongs to an aborted transaction (every record of
	// a batch belongs to one transaction). Such records are removed. nil
	// means no transaction was aborted. Control batches (transaction
	// markers) are always kept.
	Aborted func(producerID, offset int64) bool
	// RetainBatch, if set, keeps every batch for which it returns true,
	// as a batch without records if all of them go: Kafka keeps the last
	// batch of each active producer so that its sequence numbers survive
	// a restart, and the broker can ask for the same.
	RetainBatch func(h *record.Header) bool
	// KeepEntries keeps every batch, as a batch without records if all of
	// them go, so the cleaned segments hold the same batches at the same
	// offsets and stay part of the Raft view: a replicated log compacts
	// without moving its first Raft index, and a replica that catches up
	// from it replays the cleaned entries. Each removed batch still costs
	// its 61-byte header.
	KeepEntries bool
	// MaxKeys caps the distinct keys a pass maps (the memory it uses,
	// about 40 bytes a key). A pass stops taking dirty segments once the
	// map holds this many, after at least one; 0 means no cap.
	MaxKeys int
	// Decompressor is used for compressed batches; nil makes one for the
	// pass.
	Decompressor *record.Decompressor
}

// CompactStats say what a pass did.
type CompactStats struct {
	SegmentsBefore    int   // segments the pass cleaned
	SegmentsAfter     int   // segments that replaced them
	BytesBefore       int64 // their sizes
	BytesAfter        int64
	RecordsRemoved    int64 // every record removed, including the two below
	TombstonesRemoved int64 // tombstones past their delete horizon
	AbortedRemoved    int64 // records of aborted transactions
	BatchesRemoved    int64 // batches left with no record and dropped
	// FirstDirtyOffset is the cleaner checkpoint after the pass.
	FirstDirtyOffset int64
}

// SegmentsMerged is how many fewer segments the log has after the pass.
func (s CompactStats) SegmentsMerged() int { return s.SegmentsBefore - s.SegmentsAfter }

// FirstDirtyOffset is the cleaner checkpoint: the first offset that no
// compaction pass has cleaned yet.
func (l *Log) FirstDirtyOffset() int64 { return l.cleanedTo.Load() }

// DirtyRatio is the share of the cleanable bytes (sealed segments that end
// at or below upTo and the high watermark) that no pass has cleaned yet, for
// min.cleanable.dirty.ratio; 0 when nothing is cleanable.
func (l *Log) DirtyRatio(upTo int64) float64 {
	upTo = min(upTo, l.HighWatermark())
	cp := l.cleanedTo.Load()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var total, dirty int64
	for _, s := range l.segs[:len(l.segs)-1] {
		next := s.nextOffset()
		if !s.sealed.Load() || next > upTo {
			break
		}
		size := s.size.Load()
		total += size
		if next > cp {
			dirty += size
		}
	}
	if total == 0 {
		return 0
	}
	return float64(dirty) / float64(total)
}

// cleanInput is a segment a pass cleans, as it was when the pass began.
type cleanInput struct {
	seg   *segment
	size  int64
	next  int64
	dirty bool // not cleaned before
}

type compactPlan struct {
	inputs []cleanInput
	end    int64 // next offset of the last input
}

// Compact runs one compaction pass. It is safe to run while the log is
// appended to and read; passes run one at a time. Reads see either the old
// segments or the new ones, never a mix. A pass that races with retention,
// DeleteRecords or truncation over the same segments returns
// ErrCompactConflict and changes nothing; an I/O error after the swap
// committed fails the log (a restart finishes the swap).
func (l *Log) Compact(opts CompactOptions) (CompactStats, error) {
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	stats := CompactStats{FirstDirtyOffset: l.cleanedTo.Load()}
	l.mu.Lock()
	err := l.failed
	if l.closing {
		err = ErrClosed
	}
	l.mu.Unlock()
	if err != nil {
		return stats, err
	}
	p := l.planCompaction(min(opts.UpTo, l.HighWatermark()))
	if len(p.inputs) == 0 {
		return stats, nil
	}
	d := opts.Decompressor
	if d == nil {
		d = record.NewDecompressor()
		defer d.Close()
	}
	c := &cleaner{l: l, cfg: l.cfg.Load(), opts: opts, d: d, now: l.clock.Now().UnixMilli(), logStart: l.LogStartOffset(),
		seed0: maphash.MakeSeed(), seed1: maphash.MakeSeed()}
	c.horizon = c.now + max(opts.DeleteRetention, 0).Milliseconds()
	if err := c.buildKeyMap(&p); err != nil {
		return stats, err
	}
	outs, err := c.rewrite(&p)
	if err != nil {
		return stats, err
	}
	stats = c.stats
	stats.SegmentsBefore, stats.SegmentsAfter = len(p.inputs), len(outs)
	for _, in := range p.inputs {
		stats.BytesBefore += in.size
	}
	for _, o := range outs {
		stats.BytesAfter += o.size.Load()
	}
	checkpoint := max(l.cleanedTo.Load(), p.end)
	stats.FirstDirtyOffset = checkpoint
	if !c.changed && sameLayout(p.inputs, outs) {
		// The new files would be copies of the old: keep the old.
		discardOutputs(outs)
		stats.SegmentsAfter, stats.BytesAfter = stats.SegmentsBefore, stats.BytesBefore
		if checkpoint > l.cleanedTo.Load() {
			if err := l.advanceCheckpoint(&p, checkpoint); err != nil {
				stats.FirstDirtyOffset = l.cleanedTo.Load()
				return stats, err
			}
		}
		return stats, nil
	}
	if l.crashAt("rewritten") {
		discardOutputs(outs)
		return stats, errSimulatedCrash
	}
	if err := l.swapIn(&p, outs, checkpoint); err != nil {
		stats.FirstDirtyOffset = l.cleanedTo.Load()
		return stats, err
	}
	l.logger.Info("compacted", "segments_before", stats.SegmentsBefore, "segments_after", stats.SegmentsAfter,
		"bytes_before", stats.BytesBefore, "bytes_after", stats.BytesAfter, "records_removed", stats.RecordsRemoved,
		"first_dirty_offset", checkpoint)
	return stats, nil
}

// advanceCheckpoint moves the checkpoint past inputs that a pass left as
// they were, if they are still the log's.
func (l *Log) advanceCheckpoint(p *compactPlan, checkpoint int64) error {
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	if err := l.checkInputs(p); err != nil {
		return err
	}
	if err := l.writeCleanerCheckpoint(checkpoint); err != nil {
		return err
	}
	l.cleanedTo.Store(checkpoint)
	return nil
}

// planCompaction picks the segments a pass cleans: the sealed segments from
// the first on that end at or below upTo, never the active one.
func (l *Log) planCompaction(upTo int64) compactPlan {
	cp := l.cleanedTo.Load()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var p compactPlan
	for _, s := range l.segs[:len(l.segs)-1] {
		next := s.nextOffset()
		if !s.sealed.Load() || next > upTo {
			break
		}
		p.inputs = append(p.inputs, cleanInput{seg: s, size: s.size.Load(), next: next, dirty: next > cp})
		p.end = next
	}
	return p
}

func sameLayout(inputs []cleanInput, outs []*segment) bool {
	if len(inputs) != len(outs) {
		return false
	}
	for i, in := range inputs {
		if outs[i].base != in.seg.base || outs[i].size.Load() != in.size {
			return false
		}
	}
	return true
}

// keyHash identifies a key within one pass: two 64-bit hashes with random
// seeds, so collisions are negligible and cannot be aimed at.
type keyHash [2]uint64

// cleaner is the state of one pass.
type cleaner struct {
	l            *Log
	cfg          *Config
	opts         CompactOptions
	d            *record.Decompressor
	now          int64 // Unix ms
	horizon      int64 // delete horizon stamped on tombstones first seen now
	logStart     int64
	seed0, seed1 maphash.Seed
	keys         map[keyHash]int64 // key -> highest offset in the dirty section
	readBuf      []byte
	changed      bool // some batch is not copied unchanged
	stats        CompactStats
}

func (c *cleaner) hash(key []byte) keyHash {
	return keyHash{maphash.Bytes(c.seed0, key), maphash.Bytes(c.seed1, key)}
}

func (c *cleaner) aborted(h *record.Header) bool {
	return h.Transactional() && !h.Control() && c.opts.Aborted != nil && c.opts.Aborted(h.ProducerID, h.BaseOffset)
}

// buildKeyMap maps every key of the dirty inputs to its highest offset,
// leaving out control batches and aborted transactions. With MaxKeys it may
// shorten the plan to the dirty segments that fit.
func (c *cleaner) buildKeyMap(p *compactPlan) error {
	c.keys = make(map[keyHash]int64)
	for i, in := range p.inputs {
		if !in.dirty {
			continue
		}
		if c.opts.MaxKeys > 0 && len(c.keys) >= c.opts.MaxKeys && i > 0 && p.inputs[i-1].dirty {
			p.inputs = p.inputs[:i]
			p.end = p.inputs[i-1].next
			break
		}
		err := c.forEachBatch(in, func(b []byte, h *record.Header) error {
			if h.Control() || c.aborted(h) {
				return nil
			}
			return record.ForEachRecord(b, c.d, func(h *record.Header, r *record.Record) error {
				if r.Key != nil {
					c.keys[c.hash(r.Key)] = h.BaseOffset + int64(r.OffsetDelta)
				}
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("compact: map keys of segment %d: %w", in.seg.base, err)
		}
	}
	return nil
}

// forEachBatch calls fn with every batch of the input segment in order,
// checking each batch's frame, CRC and offsets. b aliases a buffer reused
// for the next batch. The file is read under segMu (read), a chunk at a
// time, so the segment's removal shows as ErrCompactConflict.
func (c *cleaner) forEachBatch(in cleanInput, fn func(b []byte, h *record.Header) error) error {
	const chunk = 1 << 20
	s := in.seg
	expect := s.base
	need := int64(chunk)
	for pos := int64(0); pos < in.size; {
		n := min(need, in.size-pos)
		if int64(cap(c.readBuf)) < n {
			c.readBuf = make([]byte, n)
		}
		buf := c.readBuf[:n]
		if err := c.l.readInput(s, buf, pos); err != nil {
			return err
		}
		if len(buf) < record.LengthFieldEnd {
			return fmt.Errorf("%w: segment %d: %d stray bytes at %d", record.ErrCorrupt, s.base, len(buf), pos)
		}
		p := 0
		for p+record.LengthFieldEnd <= len(buf) {
			size := record.PeekSize(buf[p:])
			if size < record.HeaderSize || pos+int64(p)+int64(size) > in.size {
				return fmt.Errorf("%w: segment %d: batch length %d at %d", record.ErrCorrupt, s.base, size, pos+int64(p))
			}
			if p+size > len(buf) {
				if p == 0 {
					need = int64(size) // larger than a chunk: read it whole
				}
				break
			}
			b := buf[p : p+size]
			h, err := record.CheckFrame(b)
			if err != nil {
				return fmt.Errorf("segment %d at %d: %w", s.base, pos+int64(p), err)
			}
			if h.BaseOffset < expect || h.LastOffsetDelta < 0 || h.LastOffset()-s.base > math.MaxInt32 || h.NextOffset() > in.next {
				return fmt.Errorf("%w: segment %d: batch at %d has offsets [%d, +%d] after %d",
					record.ErrCorrupt, s.base, pos+int64(p), h.BaseOffset, h.LastOffsetDelta, expect)
			}
			expect = h.NextOffset()
			if err := fn(b, &h); err != nil {
				return err
			}
			p += size
		}
		if p > 0 {
			need = chunk
		}
		pos += int64(p)
	}
	if expect != in.next {
		return fmt.Errorf("%w: segment %d ends at offset %d, its index says %d", record.ErrCorrupt, s.base, expect, in.next)
	}
	return nil
}

// readInput reads a segment being compacted.
func (l *Log) readInput(s *segment, buf []byte, pos int64) error {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if s.removed {
		return ErrCompactConflict
	}
	if _, err := s.f.ReadAt(buf, pos); err != nil {
		return fmt.Errorf("read segment %d: %w", s.base, err)
	}
	return nil
}

// rewrite streams the cleaned batches of every input into new segment
// files (named <base>.log.cleaned), synced and indexed, and returns them.
func (c *cleaner) rewrite(p *compactPlan) (outs []*segment, err error) {
	w := &outWriter{dir: c.l.dir, cfg: c.cfg, end: p.inputs[0].seg.base, epochs: mergedEpochs(p.inputs),
		firstIndex: p.inputs[0].seg.firstIndex, entries: c.opts.KeepEntries}
	defer func() {
		if err != nil {
			w.discard()
		}
	}()
	var scratch []byte
	for _, in := range p.inputs {
		err := c.forEachBatch(in, func(b []byte, h *record.Header) error {
			if err := w.visit(h); err != nil {
				return err
			}
			out, err := c.cleanBatch(scratch[:0], b, h, h.NextOffset() == p.end)
			if err != nil {
				return err
			}
			if len(out) == 0 {
				w.dropped(b[:record.HeaderSize])
				return nil
			}
			if &out[0] != &b[0] { // not b itself, which aliases the read buffer
				scratch = out
			}
			return w.write(out)
		})
		if err != nil {
			return nil, fmt.Errorf("compact segment %d: %w", in.seg.base, err)
		}
	}
	if w.end != p.end {
		return nil, fmt.Errorf("compact: cleaned segments end at %d, not %d", w.end, p.end)
	}
	return w.finish()
}

// cleanBatch appends to dst what is left of batch b, or nothing if it goes.
// last says b ends the pass: it is kept, if need be without records, so
// the cleaned segments end at the same offset as before and a scan without
// the index still finds that end.
func (c *cleaner) cleanBatch(dst, b []byte, h *record.Header, last bool) ([]byte, error) {
	retain := last || c.opts.KeepEntries || (c.opts.RetainBatch != nil && c.opts.RetainBatch(h))
	if h.Control() {
		// Transaction markers are kept: removing one safely needs every
		// record of its transaction gone first, which is not tracked yet.
		return b, nil
	}
	aborted := c.aborted(h)
	if aborted || h.LastOffset() < c.logStart || h.NumRecords == 0 {
		// Nothing of the batch survives: records of an aborted
		// transaction, below the log start, or none to begin with.
		n := int64(h.NumRecords)
		c.stats.RecordsRemoved += n
		if aborted {
			c.stats.AbortedRemoved += n
		}
		if retain {
			if n > 0 {
				c.changed = true
			}
			return record.AppendEmpty(dst, h), nil
		}
		c.changed = true
		c.stats.BatchesRemoved++
		return dst, nil
	}
	opts := record.FilterOptions{StampDeleteHorizon: true, DeleteHorizon: c.horizon, KeepEmpty: retain}
	out, res, err := record.Filter(dst, b, c.d, opts, c.keep)
	if err != nil {
		return dst, err
	}
	c.stats.RecordsRemoved += int64(res.Records - res.Kept)
	if res.Changed {
		c.changed = true
	}
	if len(out) == len(dst) {
		c.stats.BatchesRemoved++
	}
	return out, nil
}

// keep decides one record: a keyed record stays if no later record has its
// key, and a tombstone only until its batch's delete horizon has passed.
// Records without a key (which the broker does not accept on compacted
// topics) are kept.
func (c *cleaner) keep(h *record.Header, r *record.Record) bool {
	if r.Key == nil {
		return true
	}
	if latest, ok := c.keys[c.hash(r.Key)]; ok && h.BaseOffset+int64(r.OffsetDelta) < latest {
		return false
	}
	if r.Value == nil {
		if hz, ok := h.DeleteHorizon(); ok && c.now >= hz {
			c.stats.TombstonesRemoved++
			return false
		}
	}
	return true
}

// mergedEpochs lists the leader epochs of the inputs with the first offset
// of each, as the original segments recorded them.
func mergedEpochs(inputs []cleanInput) []EpochEntry {
	var all []EpochEntry
	for _, in := range inputs {
		in.seg.imu.RLock()
		for _, e := range in.seg.epochs {
			if n := len(all); n == 0 || all[n-1].Epoch != e.Epoch {
				all = append(all, e)
			}
		}
		in.seg.imu.RUnlock()
	}
	return all
}

// epochsWithin returns the entries of all that cover [base, next), the first
// starting no earlier than base.
func epochsWithin(all []EpochEntry, base, next int64) []EpochEntry {
	var out []EpochEntry
	for i, e := range all {
		if e.StartOffset >= next {
			break
		}
		if i+1 < len(all) && all[i+1].StartOffset <= base {
			continue
		}
		out = append(out, EpochEntry{Epoch: e.Epoch, StartOffset: max(e.StartOffset, base)})
	}
	return out
}

// outWriter writes cleaned batches into new segments: each at most
// segment.bytes (a single larger batch gets one to itself) and addressable
// from its base (offsets within 2^31, positions within 2^32). Each segment
// starts where the previous one's last batch ended, and so may begin with
// a gap.
type outWriter struct {
	dir    string
	cfg    *Config
	epochs []EpochEntry
	// firstIndex is the Raft index of the first input batch. Without
	// entries every cleaned segment gets it; with entries (every batch
	// kept, see CompactOptions.KeepEntries) each gets the index of its
	// own first batch, counted in written.
	firstIndex uint64
	entries    bool
	written    uint64
	outs       []*segment
	cur        *segment
	size       int64
	bw         *bufio.Writer
	// end is the offset after the last batch written: where the next
	// segment starts.
	end int64
	// lastDropped is the header of the batch just dropped, if the batch
	// before the current one was dropped.
	lastDropped []byte
}

// visit is called with every input batch, written or dropped, before it
// is: it ends the current segment if the batch would not be addressable
// from its base. The batch before it (kept as an empty batch if it was
// dropped) then ends the segment, so the next starts close enough.
func (w *outWriter) visit(h *record.Header) error {
	base := w.end
	if w.cur != nil {
		base = w.cur.base
	}
	if h.LastOffset()-base <= math.MaxInt32 {
		return nil
	}
	if len(w.lastDropped) > 0 {
		prev, err := record.ParseHeader(w.lastDropped)
		if err != nil {
			return err
		}
		if err := w.write(record.AppendEmpty(nil, &prev)); err != nil {
			return err
		}
	}
	if err := w.closeCurrent(); err != nil {
		return err
	}
	if h.LastOffset()-w.end > math.MaxInt32 {
		return fmt.Errorf("%w: batch [%d, +%d] too far from offset %d", record.ErrCorrupt, h.BaseOffset, h.LastOffsetDelta, w.end)
	}
	return nil
}

func (w *outWriter) dropped(header []byte) {
	w.lastDropped = append(w.lastDropped[:0], header...)
}

func (w *outWriter) write(b []byte) error {
	w.lastDropped = w.lastDropped[:0]
	n := int64(len(b))
	if w.cur != nil && w.size > 0 && (w.size+n > w.cfg.SegmentBytes || w.size+n > math.MaxUint32) {
		if err := w.closeCurrent(); err != nil {
			return err
		}
	}
	if w.cur == nil {
		if err := w.create(w.end); err != nil {
			return err
		}
	}
	h, err := record.ParseHeader(b)
	if err != nil {
		return err
	}
	if _, err := w.bw.Write(b); err != nil {
		return fmt.Errorf("write cleaned segment %d: %w", w.cur.base, err)
	}
	w.cur.track(&h, w.size, w.cfg.IndexIntervalBytes)
	w.written++
	w.size += n
	w.cur.size.Store(w.size)
	w.end = h.NextOffset()
	return nil
}

func (w *outWriter) create(base int64) error {
	path := filepath.Join(w.dir, segmentName(base)+cleanedSuffix)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create cleaned segment %d: %w", base, err)
	}
	// Compacted segments are below the Raft log's first index (see
	// FirstIndex); they keep the first index of what they replace so the
	// segments' indexes stay ordered. Segments that keep every entry
	// have no gaps and remain Raft entries.
	w.cur = &segment{base: base, dir: w.dir, f: f, next: base, maxTS: -1, maxTSOffset: -1, lastTimeIndexed: -1, compacted: !w.entries, firstIndex: w.firstIndex}
	if w.entries {
		w.cur.firstIndex += w.written
	}
	w.size = 0
	if w.bw == nil {
		w.bw = bufio.NewWriterSize(f, 1<<20)
	} else {
		w.bw.Reset(f)
	}
	return nil
}

// closeCurrent syncs the current segment and writes its index next to it.
func (w *outWriter) closeCurrent() error {
	s := w.cur
	if s == nil {
		return nil
	}
	w.cur = nil
	w.outs = append(w.outs, s) // discard cleans it up from here on
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("write cleaned segment %d: %w", s.base, err)
	}
	if err := datasync(s.f); err != nil {
		return fmt.Errorf("sync cleaned segment %d: %w", s.base, err)
	}
	s.imu.Lock()
	s.epochs = epochsWithin(w.epochs, s.base, s.next)
	s.imu.Unlock()
	s.sealed.Store(true)
	return writeSynced(filepath.Join(w.dir, indexName(s.base)+cleanedSuffix), s.encodeIndex())
}

// finish closes the last segment and makes the new files' names durable.
func (w *outWriter) finish() ([]*segment, error) {
	if err := w.closeCurrent(); err != nil {
		return nil, err
	}
	if err := SyncDir(w.dir); err != nil {
		return nil, err
	}
	return w.outs, nil
}

// discard closes and deletes everything written.
func (w *outWriter) discard() {
	if w.cur != nil {
		w.outs = append(w.outs, w.cur)
		w.cur = nil
	}
	discardOutputs(w.outs)
	w.outs = nil
}

// discardOutputs closes and deletes cleaned segments that were not swapped in.
func discardOutputs(outs []*segment) {
	for _, s := range outs {
		s.close()
		os.Remove(filepath.Join(s.dir, segmentName(s.base)+cleanedSuffix))
		os.Remove(filepath.Join(s.dir, indexName(s.base)+cleanedSuffix))
	}
}

// writeSynced creates path with data and fsyncs it (the directory is synced
// by the caller).
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Base(path), err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", filepath.Base(path), err)
	}
	return f.Close()
}
