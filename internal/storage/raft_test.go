package storage

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func TestResetToSnapshot(t *testing.T) {
	h := newHarness(t, smallConfig())
	batches, _ := raftLog(t, h, 40)
	next := record.PeekLastOffset(batches[len(batches)-1]) + 1000
	if err := h.log.ResetTo(500, 7, next); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		if f, l := h.log.FirstIndex(), h.log.LastIndex(); f != 500 || l != 499 {
			t.Fatalf("after reset: first %d last %d, want 500 499", f, l)
		}
		if term, err := h.log.Term(499); err != nil || term != 7 {
			t.Fatalf("term of the snapshot index = %d, %v", term, err)
		}
		if s, e := h.log.LogStartOffset(), h.log.LogEndOffset(); s != next || e != next {
			t.Fatalf("offsets after reset: start %d end %d, want %d", s, e, next)
		}
	}
	check()
	h.reopen()
	check()
	b := testBatch(t, int(next), 3, 0, 50)
	res, err := h.log.Append(b, 8, 0)
	if err != nil || res.Index != 500 || res.BaseOffset != next {
		t.Fatalf("append after reset: %+v, %v", res, err)
	}
	h.log.Sync()
	h.crash()
	h.open()
	if h.log.LastIndex() != 500 || h.log.LogEndOffset() != next+3 {
		t.Fatalf("after crash: last index %d, end %d", h.log.LastIndex(), h.log.LogEndOffset())
	}
	if term, _ := h.log.Term(500); term != 8 {
		t.Fatalf("term of entry 500 = %d", term)
	}
}

// A crash after the segments are gone but before the new one exists must
// still restart at the snapshot's offset.
func TestResetToRecoversWithoutSegments(t *testing.T) {
	h := newHarness(t, smallConfig())
	raftLog(t, h, 10)
	if err := h.log.ResetTo(100, 3, 5000); err != nil {
		t.Fatal(err)
	}
	h.crash()
	entries, _ := os.ReadDir(h.dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".log") || strings.HasSuffix(e.Name(), ".index") || e.Name() == logStartName {
			os.Remove(filepath.Join(h.dir, e.Name()))
		}
	}
	h.open()
	if h.log.FirstIndex() != 100 || h.log.LogEndOffset() != 5000 {
		t.Fatalf("first index %d, end %d; want 100, 5000", h.log.FirstIndex(), h.log.LogEndOffset())
	}
}

func TestAbandonLosesOnlyUnsyncedData(t *testing.T) {
	h := newHarness(t, smallConfig())
	raftLog(t, h, 10)
	cfg := smallConfig()
	cfg.FlushMessages = 1 << 30
	cfg.FlushInterval = time.Hour
	h.log.SetConfig(cfg)
	if _, err := h.log.Append(testBatch(t, int(h.log.LogEndOffset()), 2, 0, 50), 1, 0); err != nil {
		t.Fatal(err)
	}
	h.log.Abandon()
	h.log = nil
	h.open()
	if h.log.LastIndex() != 10 {
		t.Fatalf("last index after abandon = %d, want 10 (the unsynced entry lost)", h.log.LastIndex())
	}
}

// TestRaftViewRandomized checks the Raft view against a model through
// random appends, tail truncations, crashes and reopens across segment
// rolls.
func TestRaftViewRandomized(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		cfg := smallConfig()
		cfg.SegmentBytes = 2 << 10
		h := newHarness(t, cfg)
		type ent struct {
			term uint64
			base int64
			n    int
		}
		var model []ent
		next := int64(0)
		term := uint64(1)
		for step := range 300 {
			switch r := rng.IntN(10); {
			case r < 6:
				n := 1 + rng.IntN(4)
				if rng.IntN(5) == 0 {
					term++
				}
				res, err := h.log.Append(testBatch(t, 0, n, 0, 20+rng.IntN(200)), int32(term), 0)
				if err != nil {
					t.Fatal(err)
				}
				if res.Index != uint64(len(model)+1) || res.BaseOffset != next {
					t.Fatalf("seed %d step %d: append got index %d offset %d, want %d %d", seed, step, res.Index, res.BaseOffset, len(model)+1, next)
				}
				model = append(model, ent{term: term, base: next, n: n})
				next += int64(n)
				if rng.IntN(2) == 0 {
					if err := h.log.Sync(); err != nil {
						t.Fatal(err)
					}
				}
			case r < 8 && len(model) > 0:
				keep := rng.IntN(len(model) + 1)
				if err := h.log.TruncateAfterIndex(uint64(keep)); err != nil {
					t.Fatal(err)
				}
				model = model[:keep]
				next = 0
				if keep > 0 {
					next = model[keep-1].base + int64(model[keep-1].n)
				}
			case r < 9:
				if err := h.log.Sync(); err != nil {
					t.Fatal(err)
				}
				h.crash()
				h.open()
			default:
				h.reopen()
			}
			if got := h.log.LastIndex(); got != uint64(len(model)) {
				t.Fatalf("seed %d step %d: last index %d, want %d", seed, step, got, len(model))
			}
			if got := h.log.LogEndOffset(); got != next {
				t.Fatalf("seed %d step %d: log end %d, want %d", seed, step, got, next)
			}
			if err := h.log.Sync(); err != nil {
				t.Fatal(err)
			}
			for i, e := range model {
				idx := uint64(i + 1)
				tm, err := h.log.Term(idx)
				if err != nil || tm != e.term {
					t.Fatalf("seed %d step %d: term(%d) = %d, %v; want %d", seed, step, idx, tm, err, e.term)
				}
				off, err := h.log.OffsetOfIndex(idx)
				if err != nil || off != e.base {
					t.Fatalf("seed %d step %d: offset of %d = %d, %v; want %d", seed, step, idx, off, err, e.base)
				}
			}
			if len(model) > 0 {
				lo := uint64(1 + rng.IntN(len(model)))
				bs, err := h.log.EntryBatches(lo, uint64(len(model)+1), math.MaxUint64)
				if err != nil || len(bs) != len(model)-int(lo)+1 {
					t.Fatalf("seed %d step %d: entries from %d: %d, %v", seed, step, lo, len(bs), err)
				}
				for k, b := range bs {
					e := model[int(lo)-1+k]
					if record.PeekBaseOffset(b) != e.base || uint64(record.PeekLeaderEpoch(b)) != e.term {
						t.Fatalf("seed %d step %d: entry %d has offset %d term %d, want %d %d", seed, step, int(lo)+k, record.PeekBaseOffset(b), record.PeekLeaderEpoch(b), e.base, e.term)
					}
				}
			}
		}
	}
}

func TestLowerHighWatermark(t *testing.T) {
	h := newHarness(t, smallConfig())
	batches, _ := raftLog(t, h, 60)
	mid := record.PeekBaseOffset(batches[40])
	if err := h.log.LowerHighWatermark(mid); err != nil {
		t.Fatal(err)
	}
	if hw := h.log.HighWatermark(); hw != mid {
		t.Fatalf("high watermark %d, want %d", hw, mid)
	}
	out, err := h.log.Read(nil, record.PeekBaseOffset(batches[39]), ReadOptions{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if nextOf(out) != mid {
		t.Fatalf("read beyond the lowered high watermark: up to %d", nextOf(out))
	}
	// Moving it forward again goes batch by batch, as before.
	end := record.PeekLastOffset(batches[50]) + 1
	h.log.SetHighWatermark(end)
	if hw := h.log.HighWatermark(); hw != end {
		t.Fatalf("high watermark %d after raising to %d", hw, end)
	}
	h.log.SetHighWatermark(h.log.LogEndOffset())
	if hw := h.log.HighWatermark(); hw != h.log.LogEndOffset() {
		t.Fatalf("high watermark %d, log end %d", hw, h.log.LogEndOffset())
	}
}

func nextOf(b []byte) int64 {
	next := int64(-1)
	for len(b) > 0 {
		next = record.PeekLastOffset(b) + 1
		b = b[record.PeekSize(b):]
	}
	return next
}
