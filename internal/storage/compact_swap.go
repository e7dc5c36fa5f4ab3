package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
)

// The swap that puts cleaned segments in place of the ones they replace
// (see docs/format/log.md, "Compaction swap"):
//
//  1. The cleaned segments are written as <base>.log.cleaned with their
//     index <base>.index.cleaned, fsynced, and the directory fsynced.
//  2. Commit: the cleaner-swap file, listing the bases of the replaced
//     segments, the bases and sizes of the cleaned ones and the new
//     cleaner checkpoint, is written atomically (tmp, fsync, rename,
//     directory fsync).
//  3. The in-memory segment list is swapped under segMu.
//  4. Each cleaned file is renamed over its final name; replaced segments
//     whose names no cleaned segment took are deleted; the directory is
//     fsynced; the checkpoint is written; the cleaner-swap file is deleted
//     and the directory fsynced.
//
// A crash before the commit leaves *.cleaned files, which recovery deletes:
// the old segments are untouched. A crash after it leaves the cleaner-swap
// file, and recovery redoes step 4, every part of which can be repeated.

const (
	cleanerCheckpointName = "cleaner-checkpoint"
	swapManifestName      = "cleaner-swap"
	cleanedSuffix         = ".cleaned"
)

// errSimulatedCrash is returned when a test's swapHook stops a swap.
var errSimulatedCrash = errors.New("simulated crash")

func (l *Log) crashAt(step string) bool { return l.swapHook != nil && l.swapHook(step) }

// swapManifest is the commit record of a compaction swap.
type swapManifest struct {
	checkpoint int64
	inputs     []int64      // bases of the segments replaced
	outputs    []swapOutput // the cleaned segments
}

type swapOutput struct {
	base int64
	size int64
}

const swapManifestVersion = 1

// encode lays the manifest out as
//
//	version u8 | checkpoint i64 | nIn u32 | nIn × base i64 |
//	nOut u32 | nOut × (base i64 | size i64) | crc32c u32
func (m *swapManifest) encode() []byte {
	be := binary.BigEndian
	b := []byte{swapManifestVersion}
	b = be.AppendUint64(b, uint64(m.checkpoint))
	b = be.AppendUint32(b, uint32(len(m.inputs)))
	for _, base := range m.inputs {
		b = be.AppendUint64(b, uint64(base))
	}
	b = be.AppendUint32(b, uint32(len(m.outputs)))
	for _, o := range m.outputs {
		b = be.AppendUint64(b, uint64(o.base))
		b = be.AppendUint64(b, uint64(o.size))
	}
	return Seal(b)
}

var errBadManifest = errors.New("bad cleaner-swap file")

// decodeSwapManifest parses a manifest body (after Unseal).
func decodeSwapManifest(b []byte) (*swapManifest, error) {
	be := binary.BigEndian
	if len(b) < 1+8+4 || b[0] != swapManifestVersion {
		return nil, fmt.Errorf("%w: header", errBadManifest)
	}
	m := &swapManifest{checkpoint: int64(be.Uint64(b[1:]))}
	nIn := uint64(be.Uint32(b[9:]))
	b = b[13:]
	if uint64(len(b)) < 8*nIn+4 {
		return nil, fmt.Errorf("%w: %d inputs", errBadManifest, nIn)
	}
	for range nIn {
		m.inputs = append(m.inputs, int64(be.Uint64(b)))
		b = b[8:]
	}
	nOut := uint64(be.Uint32(b))
	b = b[4:]
	if uint64(len(b)) != 16*nOut {
		return nil, fmt.Errorf("%w: %d outputs", errBadManifest, nOut)
	}
	for range nOut {
		m.outputs = append(m.outputs, swapOutput{base: int64(be.Uint64(b)), size: int64(be.Uint64(b[8:]))})
		b = b[16:]
	}
	if m.checkpoint < 0 || len(m.outputs) == 0 {
		return nil, fmt.Errorf("%w: checkpoint %d, %d outputs", errBadManifest, m.checkpoint, len(m.outputs))
	}
	for _, base := range m.inputs {
		if base < 0 {
			return nil, fmt.Errorf("%w: input %d", errBadManifest, base)
		}
	}
	for _, o := range m.outputs {
		if o.base < 0 || o.size <= 0 {
			return nil, fmt.Errorf("%w: output %d size %d", errBadManifest, o.base, o.size)
		}
	}
	return m, nil
}

// swapIn replaces the plan's inputs with outs, on disk and in memory, and
// moves the checkpoint. Before the commit any failure discards outs and
// leaves the log as it was; after it, a failure fails the log, and the next
// Open finishes the swap.
func (l *Log) swapIn(p *compactPlan, outs []*segment, checkpoint int64) (err error) {
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	committed := false
	defer func() {
		switch {
		case err == nil || errors.Is(err, errSimulatedCrash):
		case !committed:
			discardOutputs(outs)
		default:
			l.mu.Lock()
			err = l.failLocked(fmt.Errorf("compaction swap: %w", err))
			l.mu.Unlock()
		}
	}()
	if err := l.checkInputs(p); err != nil {
		return err
	}
	if l.crashAt("cleaned") {
		return errSimulatedCrash
	}
	m := &swapManifest{checkpoint: checkpoint}
	for _, in := range p.inputs {
		m.inputs = append(m.inputs, in.seg.base)
	}
	for _, o := range outs {
		m.outputs = append(m.outputs, swapOutput{base: o.base, size: o.size.Load()})
	}
	if err := WriteFileAtomic(l.dir, swapManifestName, m.encode()); err != nil {
		if _, serr := os.Stat(filepath.Join(l.dir, swapManifestName)); serr == nil {
			committed = true // renamed into place, durable or not: a restart may find it
		}
		return err
	}
	committed = true
	if l.crashAt("committed") {
		return errSimulatedCrash
	}
	for _, o := range outs {
		// Opened by the temporary name: the handle follows the rename.
		df, err := openDirect(filepath.Join(l.dir, segmentName(o.base)+cleanedSuffix))
		if err != nil {
			return fmt.Errorf("open cleaned segment %d for direct I/O: %w", o.base, err)
		}
		o.df = df
	}
	l.replaceSegments(p, outs, checkpoint)
	if l.crashAt("swapped") {
		return errSimulatedCrash
	}
	if err := l.renameSwapOutputs(m); err != nil {
		return err
	}
	return l.finishSwap(m)
}

// checkInputs makes sure the plan's inputs are still the log's segments,
// unchanged, so the swap replaces exactly what was cleaned.
func (l *Log) checkInputs(p *compactPlan) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return ErrClosed
	}
	if l.failed != nil {
		return l.failed
	}
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	i := segmentIndex(l.segs, p.inputs[0].seg)
	if i < 0 || i+len(p.inputs) >= len(l.segs) {
		return ErrCompactConflict
	}
	for k, in := range p.inputs {
		s := l.segs[i+k]
		if s != in.seg || s.removed || !s.sealed.Load() || s.size.Load() != in.size {
			return ErrCompactConflict
		}
	}
	return nil
}

func segmentIndex(segs []*segment, s *segment) int {
	for i, x := range segs {
		if x == s {
			return i
		}
	}
	return -1
}

// replaceSegments swaps the inputs for outs in the segment list, at once
// for readers (who hold segMu while they read), and closes the inputs.
func (l *Log) replaceSegments(p *compactPlan, outs []*segment, checkpoint int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.segMu.Lock()
	defer l.segMu.Unlock()
	// Readers start read-aheads only under segMu: with it held, none can
	// begin from a file about to close.
	l.ra.reset()
	i := segmentIndex(l.segs, p.inputs[0].seg) // checked by checkInputs; swapMu keeps it
	n := len(p.inputs)
	segs := make([]*segment, 0, len(l.segs)-n+len(outs))
	segs = append(segs, l.segs[:i]...)
	segs = append(segs, outs...)
	segs = append(segs, l.segs[i+n:]...)
	l.segs = segs
	replaced := make(map[*segment]bool, n)
	for _, in := range p.inputs {
		replaced[in.seg] = true
		in.seg.removed = true
		in.seg.close()
		l.undirtyLocked(in.seg)
	}
	// A boundary in a replaced segment is at the end of the last one (they
	// end at or below the high watermark): the end of the last output.
	last := outs[len(outs)-1]
	for _, bp := range []*atomic.Pointer[boundary]{&l.visible, &l.written, &l.logEnd} {
		if b := bp.Load(); replaced[b.seg] {
			bp.Store(&boundary{next: b.next, seg: last, pos: last.size.Load()})
		}
	}
	l.recentMu.Lock()
	if l.recent != nil && replaced[l.recent.seg] {
		l.recent = nil
	}
	l.recentMu.Unlock()
	l.cleanedTo.Store(checkpoint)
}

// renameSwapOutputs gives the cleaned files of a committed swap their final
// names. A cleaned file already renamed is skipped.
func (l *Log) renameSwapOutputs(m *swapManifest) error {
	for _, o := range m.outputs {
		for _, name := range []string{indexName(o.base), segmentName(o.base)} {
			from := filepath.Join(l.dir, name+cleanedSuffix)
			err := os.Rename(from, filepath.Join(l.dir, name))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("rename %s: %w", filepath.Base(from), err)
			}
			if l.crashAt("renamed " + name) {
				return errSimulatedCrash
			}
		}
	}
	return nil
}

// finishSwap deletes the replaced segments whose names no cleaned segment
// took, writes the checkpoint and deletes the manifest.
func (l *Log) finishSwap(m *swapManifest) error {
	kept := make(map[int64]bool, len(m.outputs))
	for _, o := range m.outputs {
		kept[o.base] = true
	}
	for _, base := range m.inputs {
		if kept[base] {
			continue
		}
		for _, name := range []string{segmentName(base), indexName(base)} {
			if err := os.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove replaced segment file: %w", err)
			}
		}
		if l.crashAt("removed " + segmentName(base)) {
			return errSimulatedCrash
		}
	}
	if err := SyncDir(l.dir); err != nil {
		return err
	}
	if err := l.writeCleanerCheckpoint(m.checkpoint); err != nil {
		return err
	}
	if l.crashAt("checkpointed") {
		return errSimulatedCrash
	}
	if err := os.Remove(filepath.Join(l.dir, swapManifestName)); err != nil {
		return fmt.Errorf("remove %s: %w", swapManifestName, err)
	}
	return SyncDir(l.dir)
}

// finishInterruptedSwap completes, at start, a swap that a crash cut short
// after its commit. A damaged manifest stops the log from opening: without
// it there is no telling which segments are current.
func (l *Log) finishInterruptedSwap() error {
	path := filepath.Join(l.dir, swapManifestName)
	body, err := ReadSealed(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errBadManifest, err)
	}
	m, err := decodeSwapManifest(body)
	if err != nil {
		return err
	}
	l.logger.Warn("finishing a compaction swap interrupted by a crash", "segments_replaced", len(m.inputs),
		"cleaned_segments", len(m.outputs), "first_dirty_offset", m.checkpoint)
	if err := l.renameSwapOutputs(m); err != nil {
		return err
	}
	for _, o := range m.outputs {
		st, err := os.Stat(filepath.Join(l.dir, segmentName(o.base)))
		if err != nil {
			return fmt.Errorf("finish compaction swap: %w", err)
		}
		if st.Size() != o.size {
			return fmt.Errorf("finish compaction swap: segment %d has %d bytes, the swap wrote %d", o.base, st.Size(), o.size)
		}
	}
	return l.finishSwap(m)
}

func (l *Log) writeCleanerCheckpoint(offset int64) error {
	return WriteFileAtomic(l.dir, cleanerCheckpointName, Seal([]byte(strconv.FormatInt(offset, 10))))
}

// readCleanerCheckpoint returns the first offset not yet cleaned, or 0 if
// the checkpoint is missing or damaged: then the next pass cleans
// everything again, which costs time but loses nothing.
func (l *Log) readCleanerCheckpoint() int64 {
	body, err := ReadSealed(filepath.Join(l.dir, cleanerCheckpointName))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		l.logger.Warn("cleaner checkpoint unreadable; the next compaction starts from the beginning", "err", err)
		return 0
	}
	n, err := strconv.ParseInt(string(body), 10, 64)
	if err != nil || n < 0 {
		l.logger.Warn("cleaner checkpoint unreadable; the next compaction starts from the beginning", "body", string(body))
		return 0
	}
	return n
}
