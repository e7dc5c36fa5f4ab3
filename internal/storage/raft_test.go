package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/weir-dev/weir/internal/record"
)

// raftLog appends n batches of 1..3 records with terms rising every 7
// batches and returns a copy of each batch as stored.
func raftLog(t *testing.T, h *harness, n int) (batches [][]byte, terms []uint64) {
	t.Helper()
	next := 0
	for i := range n {
		size := 1 + i%3
		b := testBatch(t, next, size, int64(next), 120)
		term := uint64(1 + i/7)
		res, err := h.log.Append(b, int32(term), 0)
		if err != nil {
			t.Fatal(err)
		}
		if res.Index != uint64(i+1) {
			t.Fatalf("batch %d got index %d", i, res.Index)
		}
		batches = append(batches, append([]byte(nil), b...))
		terms = append(terms, term)
		next += size
	}
	if err := h.log.Sync(); err != nil {
		t.Fatal(err)
	}
	return batches, terms
}

func checkRaftView(t *testing.T, l *Log, first uint64, batches [][]byte, terms []uint64) {
	t.Helper()
	last := uint64(len(batches))
	if got := l.FirstIndex(); got != first {
		t.Fatalf("first index %d, want %d", got, first)
	}
	if got := l.LastIndex(); got != last {
		t.Fatalf("last index %d, want %d", got, last)
	}
	for i := first; i <= last; i++ {
		term, err := l.Term(i)
		if err != nil || term != terms[i-1] {
			t.Fatalf("term(%d) = %d, %v; want %d", i, term, err, terms[i-1])
		}
		off, err := l.OffsetOfIndex(i)
		if err != nil || off != record.PeekBaseOffset(batches[i-1]) {
			t.Fatalf("offset of %d = %d, %v", i, off, err)
		}
		idx, err := l.IndexOfOffset(record.PeekLastOffset(batches[i-1]))
		if err != nil || idx != i {
			t.Fatalf("index of offset %d = %d, %v; want %d", record.PeekLastOffset(batches[i-1]), idx, err, i)
		}
	}
	got, err := l.EntryBatches(first, last+1, 1<<30)
	if err != nil || uint64(len(got)) != last-first+1 {
		t.Fatalf("entries [%d,%d]: %d, %v", first, last, len(got), err)
	}
	for k, b := range got {
		if !bytes.Equal(b, batches[first-1+uint64(k)]) {
			t.Fatalf("entry %d differs from what was appended", first+uint64(k))
		}
	}
	// maxBytes: at least one entry, then only what fits.
	one, err := l.EntryBatches(first, last+1, 1)
	if err != nil || len(one) != 1 {
		t.Fatalf("entries with maxBytes 1: %d, %v", len(one), err)
	}
	if _, err := l.Term(last + 1); !errors.Is(err, ErrIndexUnavailable) {
		t.Fatalf("term past the end: %v", err)
	}
	if first > 1 {
		if _, err := l.Term(first - 2); !errors.Is(err, ErrIndexCompacted) {
			t.Fatalf("term before the start: %v", err)
		}
		if _, err := l.EntryBatches(first-1, last, 100); !errors.Is(err, ErrIndexCompacted) {
			t.Fatalf("entries before the start: %v", err)
		}
	}
}

func TestRaftViewAcrossSegmentsAndRestarts(t *testing.T) {
	h := newHarness(t, smallConfig())
	batches, terms := raftLog(t, h, 150)
	if h.log.SegmentCount() < 3 {
		t.Fatalf("only %d segments", h.log.SegmentCount())
	}
	checkRaftView(t, h.log, 1, batches, terms)
	if term, err := h.log.Term(0); err != nil || term != 0 {
		t.Fatalf("term(0) = %d, %v", term, err)
	}
	h.reopen()
	checkRaftView(t, h.log, 1, batches, terms)
	h.crash()
	// Lose every index file: the indexes are rebuilt from the segments.
	idx, _ := filepath.Glob(filepath.Join(h.dir, "*"+indexSuffix))
	for _, p := range idx {
		os.Remove(p)
	}
	h.open()
	checkRaftView(t, h.log, 1, batches, terms)
}

func TestRaftViewTruncateAndRetention(t *testing.T) {
	cfg := smallConfig()
	cfg.RetentionBytes = 8 << 10
	cfg.RetentionAge = -1
	h := newHarness(t, cfg)
	batches, terms := raftLog(t, h, 150)
	// Follower conflict resolution: drop everything after 120.
	if err := h.log.TruncateAfterIndex(120); err != nil {
		t.Fatal(err)
	}
	batches, terms = batches[:120], terms[:120]
	checkRaftView(t, h.log, 1, batches, terms)
	// New entries continue at 121 with the next offset.
	b := testBatch(t, int(record.PeekLastOffset(batches[119])+1), 2, 0, 50)
	res, err := h.log.Append(b, 99, 0)
	if err != nil || res.Index != 121 {
		t.Fatalf("append after truncate: index %d, %v", res.Index, err)
	}
	h.log.Sync()
	batches, terms = append(batches, append([]byte(nil), b...)), append(terms, 99)

	// Retention deletes old segments: the Raft log starts later, and the
	// term of the entry before it is remembered.
	if _, err := h.log.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	first := h.log.FirstIndex()
	if first <= 1 {
		t.Fatalf("retention left the Raft log at %d", first)
	}
	checkRaftView(t, h.log, first, batches, terms)
	if term, err := h.log.Term(first - 1); err != nil || term != terms[first-2] {
		t.Fatalf("term before the first index = %d, %v; want %d", term, err, terms[first-2])
	}
	h.reopen()
	checkRaftView(t, h.log, first, batches, terms)
	if term, _ := h.log.Term(first - 1); term != terms[first-2] {
		t.Fatalf("after restart: term before the first index = %d, want %d", term, terms[first-2])
	}
}
