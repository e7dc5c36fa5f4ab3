package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-dev/weir/internal/record"
)

// kv is one record to append: a tombstone when tomb is set.
type kv struct {
	key, value string
	tomb       bool
}

// crec is a record as read back (or as the model expects it).
type crec struct {
	off   int64
	key   string
	value string
	tomb  bool
}

func (c crec) String() string {
	if c.tomb {
		return fmt.Sprintf("%d:%s=<nil>", c.off, c.key)
	}
	return fmt.Sprintf("%d:%s=%.12s", c.off, c.key, c.value)
}

func buildBatch(t testing.TB, bo record.BatchOptions, kvs []kv) []byte {
	t.Helper()
	rs := make([]record.Record, len(kvs))
	for i, r := range kvs {
		rs[i] = record.Record{TimestampDelta: int64(i), Key: []byte(r.key), Value: []byte(r.value)}
		if r.tomb {
			rs[i].Value = nil
		}
	}
	b, err := record.Build(bo, rs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func plainOpts(c record.Compression, ts int64) record.BatchOptions {
	return record.BatchOptions{FirstTimestamp: ts, Compression: c, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
}

// model is every record appended, in offset order.
type model struct{ recs []crec }

func (m *model) add(base int64, kvs []kv) {
	for i, r := range kvs {
		m.recs = append(m.recs, crec{off: base + int64(i), key: r.key, value: r.value, tomb: r.tomb})
	}
}

// expect is what a fully compacted log holds: below end, the latest record
// of each key (among records below end that are not aborted), without
// tombstones if they have expired; from end on, everything.
func (m *model) expect(end int64, tombstonesGone bool, aborted func(off int64) bool) []crec {
	latest := map[string]int64{}
	for _, r := range m.recs {
		if r.off < end && (aborted == nil || !aborted(r.off)) {
			latest[r.key] = r.off
		}
	}
	var out []crec
	for _, r := range m.recs {
		if r.off < end {
			if aborted != nil && aborted(r.off) {
				continue
			}
			if latest[r.key] != r.off || (r.tomb && tombstonesGone) {
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// appendKV appends a batch and records it in the model.
func (h *harness) appendKV(m *model, bo record.BatchOptions, kvs []kv) int64 {
	h.t.Helper()
	base := h.appendSynced(buildBatch(h.t, bo, kvs))
	m.add(base, kvs)
	return base
}

// settle waits until everything appended is durable and every rolled
// segment is sealed (sealing follows the fsync in the same sync round,
// which holds syncMu).
func (h *harness) settle() {
	h.t.Helper()
	if err := h.log.Sync(); err != nil {
		h.t.Fatal(err)
	}
	h.log.syncMu.Lock()
	h.log.syncMu.Unlock()
}

// readRecords reads every visible record, checking every batch's frame and
// that offsets only increase.
func readRecords(t testing.TB, l *Log) []crec {
	t.Helper()
	d := record.NewDecompressor()
	defer d.Close()
	var out []crec
	off := l.LogStartOffset()
	last := int64(-1)
	for off < l.HighWatermark() {
		buf, err := l.Read(nil, off, ReadOptions{MaxBytes: 1 << 20, MinOneBatch: true})
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if len(buf) == 0 {
			t.Fatalf("empty read at %d below the high watermark %d", off, l.HighWatermark())
		}
		for len(buf) > 0 {
			size := record.PeekSize(buf)
			hd, err := record.CheckFrame(buf[:size])
			if err != nil {
				t.Fatalf("read back a bad batch at %d: %v", off, err)
			}
			if hd.LastOffset() < off {
				t.Fatalf("read at %d returned batch [%d, %d]", off, hd.BaseOffset, hd.LastOffset())
			}
			err = record.ForEachRecord(buf[:size], d, func(hd *record.Header, r *record.Record) error {
				o := hd.BaseOffset + int64(r.OffsetDelta)
				if o < off {
					return nil
				}
				if o <= last {
					return fmt.Errorf("offset %d after %d", o, last)
				}
				last = o
				out = append(out, crec{off: o, key: string(r.Key), value: string(r.Value), tomb: r.Value == nil})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			off = hd.NextOffset()
			buf = buf[size:]
		}
	}
	return out
}

// nextRecordFrom does what a consumer fetching from off does: it reads
// batches, skipping records below off, until it finds one.
func nextRecordFrom(t testing.TB, l *Log, off int64) *crec {
	t.Helper()
	for from := off; from < l.HighWatermark(); {
		buf, err := l.Read(nil, from, ReadOptions{MaxBytes: 1, MinOneBatch: true})
		if err != nil || len(buf) == 0 {
			t.Fatalf("read at %d: %d bytes, %v", from, len(buf), err)
		}
		var first *crec
		err = record.ForEachRecord(buf, nil, func(hd *record.Header, r *record.Record) error {
			if o := hd.BaseOffset + int64(r.OffsetDelta); o >= off && first == nil {
				first = &crec{off: o, key: string(r.Key), value: string(r.Value), tomb: r.Value == nil}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if first != nil {
			return first
		}
		hd, _ := record.ParseHeader(buf)
		if hd.LastOffset() < from {
			t.Fatalf("read at %d returned batch [%d, %d]", from, hd.BaseOffset, hd.LastOffset())
		}
		from = hd.NextOffset()
	}
	return nil
}

func sameRecords(t testing.TB, what string, got, want []crec) {
	t.Helper()
	if len(got) == len(want) {
		same := true
		for i := range got {
			if got[i] != want[i] {
				same = false
				break
			}
		}
		if same {
			return
		}
	}
	n := min(len(got), len(want))
	i := 0
	for i < n && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s: %d records, want %d; first difference at %d: got %v, want %v", what, len(got), len(want), i,
		got[i:min(i+3, len(got))], want[i:min(i+3, len(want))])
}

// fillKeyed appends n batches of 1–5 records over nkeys keys, values of
// valueSize bytes, chosen by a seeded generator.
func fillKeyed(h *harness, m *model, rng *rand.Rand, n, nkeys, valueSize int, c record.Compression) {
	for range n {
		kvs := make([]kv, 1+rng.IntN(5))
		for i := range kvs {
			k := fmt.Sprintf("key-%03d", rng.IntN(nkeys))
			v := bytes.Repeat([]byte{'x'}, valueSize)
			copy(v, fmt.Sprintf("%s@%d/%d", k, len(m.recs)+i, rng.Int()))
			kvs[i] = kv{key: k, value: string(v)}
		}
		h.appendKV(m, plainOpts(c, h.clock.Now().UnixMilli()), kvs)
	}
}

func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	var names []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func noLeftovers(t testing.TB, dir string) {
	t.Helper()
	for _, name := range segmentFiles(t, dir) {
		if strings.HasSuffix(name, cleanedSuffix) || name == swapManifestName || strings.HasSuffix(name, ".tmp") {
			t.Fatalf("leftover file %s", name)
		}
	}
}

func TestCompactKeepsLatestPerKey(t *testing.T) {
	h := newHarness(t, smallConfig())
	var m model
	rng := rand.New(rand.NewPCG(1, 2))
	fillKeyed(h, &m, rng, 300, 20, 100, record.CompressionNone)
	h.settle()
	before := h.log.SegmentCount()
	if before < 5 {
		t.Fatalf("only %d segments", before)
	}
	if r := h.log.DirtyRatio(h.log.HighWatermark()); r != 1 {
		t.Fatalf("dirty ratio before any pass %v, want 1", r)
	}
	stats, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark(), DeleteRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	end := stats.FirstDirtyOffset
	if end <= 0 || end > h.log.HighWatermark() || end != h.log.FirstDirtyOffset() {
		t.Fatalf("checkpoint %d (log says %d), hw %d", end, h.log.FirstDirtyOffset(), h.log.HighWatermark())
	}
	want := m.expect(end, false, nil)
	got := readRecords(t, h.log)
	sameRecords(t, "after compaction", got, want)
	if stats.RecordsRemoved != int64(len(m.recs)-len(want)) || stats.BytesAfter >= stats.BytesBefore || stats.SegmentsMerged() <= 0 {
		t.Fatalf("stats %+v for %d records, %d kept", stats, len(m.recs), len(want))
	}
	if h.log.SegmentCount() != before-stats.SegmentsMerged() {
		t.Fatalf("%d segments, %d before, stats %+v", h.log.SegmentCount(), before, stats)
	}
	if r := h.log.DirtyRatio(h.log.HighWatermark()); r != 0 {
		t.Fatalf("dirty ratio after a pass %v", r)
	}

	// Every offset that was removed reads as the next record kept.
	kept := map[int64]bool{}
	for _, r := range want {
		kept[r.off] = true
	}
	gaps := 0
	for off := int64(0); off < end; off++ {
		if kept[off] {
			continue
		}
		gaps++
		i, _ := slices.BinarySearchFunc(want, off, func(r crec, o int64) int { return int(r.off - o) })
		if first := nextRecordFrom(t, h.log, off); first == nil || *first != want[i] {
			t.Fatalf("reading from %d (a gap) gave %v, want %v", off, first, want[i])
		}
	}
	if gaps == 0 {
		t.Fatal("compaction left no gaps")
	}

	// Header scans and timestamp lookups work across the gaps.
	var lastEnd int64
	err = h.log.ScanBatches(0, func(hd *record.Header) error {
		if hd.BaseOffset < lastEnd {
			return fmt.Errorf("batch at %d overlaps %d", hd.BaseOffset, lastEnd)
		}
		lastEnd = hd.NextOffset()
		return nil
	})
	if err != nil || lastEnd != h.log.LogEndOffset() {
		t.Fatalf("scan batches: %v, ended at %d of %d", err, lastEnd, h.log.LogEndOffset())
	}
	if res, err := h.log.OffsetForTimestamp(0, nil); err != nil || !res.Found || res.Offset != want[0].off {
		t.Fatalf("offset for timestamp 0: %+v %v, want %d", res, err, want[0].off)
	}

	// More data, a second pass: the clean section is filtered against the
	// new keys and small segments merge further.
	fillKeyed(h, &m, rng, 150, 20, 100, record.CompressionNone)
	h.settle()
	if r := h.log.DirtyRatio(h.log.HighWatermark()); r <= 0 || r >= 1 {
		t.Fatalf("dirty ratio with new segments %v", r)
	}
	stats, err = h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark(), DeleteRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	want = m.expect(stats.FirstDirtyOffset, false, nil)
	sameRecords(t, "after a second pass", readRecords(t, h.log), want)

	h.reopen()
	sameRecords(t, "after a clean restart", readRecords(t, h.log), want)
	if h.log.FirstDirtyOffset() != stats.FirstDirtyOffset {
		t.Fatalf("checkpoint %d after restart, want %d", h.log.FirstDirtyOffset(), stats.FirstDirtyOffset)
	}
	h.crash()
	h.open()
	sameRecords(t, "after a crash", readRecords(t, h.log), want)
	// A pass with nothing new to clean changes nothing.
	names := segmentFiles(t, h.dir)
	h.settle()
	if _, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark(), DeleteRetention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if after := segmentFiles(t, h.dir); !slices.Equal(names, after) {
		t.Fatalf("an idle pass changed files: %v -> %v", names, after)
	}
	noLeftovers(t, h.dir)
}

func TestCompactTombstonesAfterDeleteRetention(t *testing.T) {
	h := newHarness(t, smallConfig())
	var m model
	ts := func() int64 { return h.clock.Now().UnixMilli() }
	h.appendKV(&m, plainOpts(0, ts()), []kv{{key: "a", value: "a1"}, {key: "b", value: "b1"}})
	h.appendKV(&m, plainOpts(0, ts()), []kv{{key: "a", tomb: true}, {key: "c", value: "c1"}})
	rng := rand.New(rand.NewPCG(3, 4))
	fillKeyed(h, &m, rng, 200, 50, 200, record.CompressionNone) // keys that never clash with a, b, c
	h.settle()
	upTo := h.log.HighWatermark()
	opts := CompactOptions{UpTo: upTo, DeleteRetention: time.Hour}

	stats, err := h.log.Compact(opts)
	if err != nil {
		t.Fatal(err)
	}
	end := stats.FirstDirtyOffset
	sameRecords(t, "first pass", readRecords(t, h.log), m.expect(end, false, nil))
	if stats.TombstonesRemoved != 0 {
		t.Fatalf("first pass removed %d tombstones", stats.TombstonesRemoved)
	}
	buf, _ := h.log.Read(nil, 2, ReadOptions{MaxBytes: 1, MinOneBatch: true})
	hd, _ := record.ParseHeader(buf)
	if hz, ok := hd.DeleteHorizon(); !ok || hz != ts()+time.Hour.Milliseconds() {
		t.Fatalf("tombstone batch horizon %d %v, want %d", hz, ok, ts()+time.Hour.Milliseconds())
	}

	h.clock.Advance(time.Hour - time.Millisecond)
	if stats, err = h.log.Compact(opts); err != nil || stats.TombstonesRemoved != 0 {
		t.Fatalf("pass before the horizon: %+v %v", stats, err)
	}
	sameRecords(t, "before the horizon", readRecords(t, h.log), m.expect(end, false, nil))

	// A restart does not restart the clock: the horizon is in the batch.
	h.reopen()
	h.clock.Advance(time.Millisecond)
	if stats, err = h.log.Compact(opts); err != nil || stats.TombstonesRemoved != 1 {
		t.Fatalf("pass at the horizon: %+v %v", stats, err)
	}
	sameRecords(t, "at the horizon", readRecords(t, h.log), m.expect(end, true, nil))
}

func TestCompactLeavesUpToAndActiveAlone(t *testing.T) {
	h := newHarness(t, smallConfig())
	var m model
	rng := rand.New(rand.NewPCG(5, 6))
	fillKeyed(h, &m, rng, 300, 10, 100, record.CompressionNone)
	h.settle()
	// UpTo in the middle of the log, and a high watermark held below the
	// log end: Compact(UpTo: huge) must still stop at the watermark.
	h.log.mu.Lock()
	h.log.onDur = nil
	h.log.mu.Unlock()
	fillKeyed(h, &m, rng, 40, 10, 100, record.CompressionNone)
	if err := h.log.Sync(); err != nil {
		t.Fatal(err)
	}
	for _, upTo := range []int64{m.recs[len(m.recs)/3].off, math.MaxInt64} {
		h.settle()
		type file struct {
			base int64
			data []byte
		}
		var untouched []file
		bound := min(upTo, h.log.HighWatermark())
		h.log.segMu.RLock()
		for i, s := range h.log.segs {
			if i == len(h.log.segs)-1 || s.nextOffset() > bound {
				data, err := os.ReadFile(s.path())
				if err != nil {
					t.Fatal(err)
				}
				untouched = append(untouched, file{s.base, data[:s.size.Load()]})
			}
		}
		h.log.segMu.RUnlock()
		stats, err := h.log.Compact(CompactOptions{UpTo: upTo})
		if err != nil {
			t.Fatal(err)
		}
		if stats.FirstDirtyOffset > bound || stats.RecordsRemoved == 0 {
			t.Fatalf("UpTo %d (bound %d): %+v", upTo, bound, stats)
		}
		for _, f := range untouched {
			data, err := os.ReadFile(filepath.Join(h.dir, segmentName(f.base)))
			if err != nil || !bytes.Equal(data[:len(f.data)], f.data) {
				t.Fatalf("segment %d at or above %d changed (%v)", f.base, bound, err)
			}
		}
		// Everything from the checkpoint up is as appended.
		got := readRecords(t, h.log)
		want := m.expect(stats.FirstDirtyOffset, false, nil)
		want = want[:len(got)] // the rest is above the high watermark
		sameRecords(t, fmt.Sprintf("UpTo %d", upTo), got, want)
	}
}

func TestCompactCompressedBatches(t *testing.T) {
	for _, c := range []record.Compression{record.CompressionNone, record.CompressionGzip, record.CompressionSnappy, record.CompressionLZ4, record.CompressionZstd} {
		t.Run(c.String(), func(t *testing.T) {
			h := newHarness(t, smallConfig())
			var m model
			for i := range 120 {
				kvs := make([]kv, 10)
				for j := range kvs {
					kvs[j] = kv{key: fmt.Sprintf("k%d", (i*10+j)%13), value: fmt.Sprintf("value %d %s", i*10+j, strings.Repeat("z", 50))}
				}
				if i%7 == 3 {
					kvs[4].tomb, kvs[4].value = true, ""
				}
				h.appendKV(&m, plainOpts(c, int64(1000+i)), kvs)
			}
			h.settle()
			stats, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark(), DeleteRetention: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, "compressed", readRecords(t, h.log), m.expect(stats.FirstDirtyOffset, false, nil))
			// Rewritten batches keep their codec; only emptied ones lose it.
			err = h.log.ScanBatches(0, func(hd *record.Header) error {
				if hd.NumRecords > 0 && hd.Compression() != c {
					return fmt.Errorf("batch at %d has codec %s", hd.BaseOffset, hd.Compression())
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			h.crash()
			h.open()
			sameRecords(t, "compressed after a crash", readRecords(t, h.log), m.expect(stats.FirstDirtyOffset, false, nil))
		})
	}
}

func TestCompactAbortedTransactions(t *testing.T) {
	h := newHarness(t, smallConfig())
	var m model
	const pid = 7
	txn := func(i int) record.BatchOptions {
		return record.BatchOptions{FirstTimestamp: 1, ProducerID: pid, ProducerEpoch: 0, BaseSequence: int32(i), Transactional: true}
	}
	markerKV := func(commit bool) kv {
		typ := byte(0) // abort
		if commit {
			typ = 1
		}
		return kv{key: string([]byte{0, 0, 0, typ}), value: string(make([]byte, 6))}
	}
	markerOpts := record.BatchOptions{FirstTimestamp: 1, ProducerID: pid, ProducerEpoch: 0, BaseSequence: -1, Transactional: true, Control: true}
	type span struct{ first, last int64 }
	var abortedTxns []span
	var markers []int64
	seqNo := 0
	for round := range 30 {
		commit := round%3 != 1
		first := int64(-1)
		for j := range 3 {
			kvs := []kv{{key: fmt.Sprintf("r%d-%d", round, j), value: strings.Repeat("t", 300)}}
			base := h.appendKV(&m, txn(seqNo), kvs)
			seqNo++
			if first < 0 {
				first = base
			}
		}
		off := h.appendKV(&m, markerOpts, []kv{markerKV(commit)})
		markers = append(markers, off)
		if !commit {
			abortedTxns = append(abortedTxns, span{first, off})
		}
		// Plain records between transactions.
		h.appendKV(&m, plainOpts(0, 1), []kv{{key: "plain", value: fmt.Sprint(round)}})
	}
	h.settle()
	isAborted := func(off int64) bool {
		for _, s := range abortedTxns {
			if off >= s.first && off < s.last {
				return true
			}
		}
		return false
	}
	var calls atomic.Int64
	stats, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark(), Aborted: func(producerID, offset int64) bool {
		calls.Add(1)
		return producerID == pid && isAborted(offset)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() == 0 || stats.AbortedRemoved == 0 {
		t.Fatalf("aborted callback called %d times, stats %+v", calls.Load(), stats)
	}
	// Control records carry the key the model gave them; the cleaner never
	// looks inside control batches, so each marker stays even though they
	// share keys.
	want := m.expect(stats.FirstDirtyOffset, false, isAborted)
	isMarker := map[int64]bool{}
	for _, off := range markers {
		isMarker[off] = true
	}
	var wantFiltered []crec
	for _, r := range m.recs {
		switch {
		case r.off >= stats.FirstDirtyOffset, isMarker[r.off]:
			wantFiltered = append(wantFiltered, r)
		case isAborted(r.off):
		case slices.ContainsFunc(want, func(w crec) bool { return w.off == r.off }):
			wantFiltered = append(wantFiltered, r)
		}
	}
	sameRecords(t, "aborted removed, markers kept", readRecords(t, h.log), wantFiltered)
	var controls int
	h.log.ScanBatches(0, func(hd *record.Header) error {
		if hd.Control() {
			controls++
		}
		return nil
	})
	if controls != len(markers) {
		t.Fatalf("%d control batches after compaction, want %d", controls, len(markers))
	}
}

// compactScenario fills a log the same way every time, so a crash run and
// a clean run can be compared.
func compactScenario(t *testing.T) (*harness, *model) {
	h := newHarness(t, smallConfig())
	var m model
	rng := rand.New(rand.NewPCG(7, 8))
	fillKeyed(h, &m, rng, 400, 150, 120, record.CompressionNone)
	h.settle()
	return h, &m
}

func TestCompactCrashAtEachSwapStep(t *testing.T) {
	// A clean run gives the steps and the result.
	h, m := compactScenario(t)
	old := readRecords(t, h.log)
	var steps []string
	h.log.swapHook = func(step string) bool { steps = append(steps, step); return false }
	stats, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark()})
	if err != nil {
		t.Fatal(err)
	}
	want := m.expect(stats.FirstDirtyOffset, false, nil)
	sameRecords(t, "clean run", readRecords(t, h.log), want)
	if stats.SegmentsAfter < 2 || stats.SegmentsAfter >= stats.SegmentsBefore {
		t.Fatalf("the scenario should merge into several segments: %+v", stats)
	}
	t.Logf("swap steps: %v", steps)

	for i, step := range steps {
		t.Run(fmt.Sprintf("%02d %s", i, step), func(t *testing.T) {
			h, _ := compactScenario(t)
			h.log.swapHook = func(s string) bool { return s == step }
			_, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark()})
			if !errors.Is(err, errSimulatedCrash) {
				t.Fatalf("compact: %v", err)
			}
			h.crash()
			h.open()
			got := readRecords(t, h.log)
			switch step {
			case "rewritten", "cleaned":
				sameRecords(t, "crash before the commit", got, old)
				if h.log.FirstDirtyOffset() != 0 {
					t.Fatalf("checkpoint moved to %d", h.log.FirstDirtyOffset())
				}
			default:
				sameRecords(t, "crash after the commit", got, want)
				if h.log.FirstDirtyOffset() != stats.FirstDirtyOffset {
					t.Fatalf("checkpoint %d, want %d", h.log.FirstDirtyOffset(), stats.FirstDirtyOffset)
				}
			}
			noLeftovers(t, h.dir)
			// The log goes on: a pass, a restart, the same records.
			if _, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark()}); err != nil {
				t.Fatal(err)
			}
			sameRecords(t, "pass after recovery", readRecords(t, h.log), want)
			h.reopen()
			sameRecords(t, "restart after recovery", readRecords(t, h.log), want)
		})
	}
}

func TestCompactDamagedSwapManifestStopsOpen(t *testing.T) {
	h, _ := compactScenario(t)
	h.log.swapHook = func(s string) bool { return s == "committed" }
	if _, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark()}); !errors.Is(err, errSimulatedCrash) {
		t.Fatal(err)
	}
	h.crash()
	path := filepath.Join(h.dir, swapManifestName)
	b, _ := os.ReadFile(path)
	b[3] ^= 1
	os.WriteFile(path, b, 0o644)
	if _, err := Open(h.dir, Options{Config: h.cfg, Clock: h.clock}); !errors.Is(err, errBadManifest) {
		t.Fatalf("open with a damaged swap file: %v", err)
	}
}

func TestCompactedSegmentIndexLost(t *testing.T) {
	h, m := compactScenario(t)
	stats, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark()})
	if err != nil {
		t.Fatal(err)
	}
	want := m.expect(stats.FirstDirtyOffset, false, nil)
	h.log.Close()
	h.log = nil
	var lost []string
	for _, name := range segmentFiles(t, h.dir) {
		if base, ok := parseBase(name, indexSuffix); ok && base < stats.FirstDirtyOffset {
			lost = append(lost, name)
			os.Remove(filepath.Join(h.dir, name))
		}
	}
	if len(lost) < 2 {
		t.Fatalf("lost only %v", lost)
	}
	h.open()
	sameRecords(t, "compacted segments rebuilt", readRecords(t, h.log), want)
	for _, name := range lost {
		b, err := ReadSealed(filepath.Join(h.dir, name))
		if err != nil {
			t.Fatalf("index %s not rewritten: %v", name, err)
		}
		if binary.BigEndian.Uint32(b[4:]) != indexVersion || binary.BigEndian.Uint32(b[8:])&indexFlagCompacted == 0 {
			t.Fatalf("index %s rewritten without the compacted flag", name)
		}
	}
}

func TestCompactedSegmentDamageCaught(t *testing.T) {
	for _, where := range []string{"record", "base offset"} {
		t.Run(where, func(t *testing.T) {
			h, m := compactScenario(t)
			stats, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark()})
			if err != nil {
				t.Fatal(err)
			}
			want := m.expect(stats.FirstDirtyOffset, false, nil)
			h.log.Close()
			h.log = nil
			// Damage the fourth batch of the first segment, whose index is
			// then lost too, so recovery has to read it.
			path := filepath.Join(h.dir, segmentName(0))
			b, _ := os.ReadFile(path)
			pos := 0
			var damaged record.Header
			for range 3 {
				pos += record.PeekSize(b[pos:])
			}
			damaged, _ = record.ParseHeader(b[pos:])
			switch where {
			case "record":
				b[pos+record.HeaderSize+5] ^= 0x40
			case "base offset":
				b[pos+2] ^= 0x01 // jumps far past the next segment
			}
			os.WriteFile(path, b, 0o644)
			os.Remove(filepath.Join(h.dir, indexName(0)))
			h.open()
			got := readRecords(t, h.log)
			var prefix []crec
			for _, r := range want {
				if r.off < damaged.BaseOffset {
					prefix = append(prefix, r)
				}
			}
			sameRecords(t, "log cut at the damaged batch", got, prefix)
			if h.log.LogEndOffset() > damaged.BaseOffset {
				t.Fatalf("log end %d, damaged batch at %d", h.log.LogEndOffset(), damaged.BaseOffset)
			}
		})
	}
}

func TestCompactConcurrentAppendsAndReads(t *testing.T) {
	cfg := smallConfig()
	h := newHarness(t, cfg)
	var m model
	var mmu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	// One producer, so the model knows every offset.
	prodDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(prodDone)
		rng := rand.New(rand.NewPCG(9, 10))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			kvs := make([]kv, 1+rng.IntN(4))
			for j := range kvs {
				kvs[j] = kv{key: fmt.Sprintf("k%d", rng.IntN(40)), value: fmt.Sprintf("%d-%d-%s", i, j, strings.Repeat("c", rng.IntN(200)))}
			}
			res, err := h.log.Append(buildBatch(t, plainOpts(0, int64(i)), kvs), 0, 0)
			if err != nil {
				errc <- err
				return
			}
			mmu.Lock()
			m.add(res.BaseOffset, kvs)
			mmu.Unlock()
			if i%20 == 0 {
				w := h.log.Durable(res.LastOffset + 1)
				<-w.Done()
			}
		}
	}()
	// Readers walk the log from the start, checking every batch.
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := int64(0)
			last := int64(-1)
			for {
				select {
				case <-stop:
					return
				default:
				}
				buf, err := h.log.Read(nil, off, ReadOptions{MaxBytes: 8 << 10, MinOneBatch: true})
				if err != nil {
					errc <- fmt.Errorf("read at %d: %w", off, err)
					return
				}
				for len(buf) > 0 {
					size := record.PeekSize(buf)
					hd, err := record.CheckFrame(buf[:size])
					if err != nil || hd.LastOffset() < off || hd.LastOffset() <= last {
						errc <- fmt.Errorf("read at %d gave batch [%d, %d] after %d: %v", off, hd.BaseOffset, hd.LastOffset(), last, err)
						return
					}
					last = hd.LastOffset()
					off = hd.NextOffset()
					buf = buf[size:]
				}
				if off >= h.log.HighWatermark() {
					off, last = 0, -1 // start over
				}
			}
		}()
	}
	// Compact until ten passes have removed records under the producer's
	// feet; between passes, wait for the producer's next batch to be
	// durable, so every pass sees more data.
	productive := 0
	for productive < 10 {
		select {
		case err := <-errc:
			t.Fatal(err)
		default:
		}
		stats, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark()})
		if err != nil {
			t.Fatal(err)
		}
		if stats.RecordsRemoved > 0 {
			productive++
		}
		w := h.log.Durable(h.log.LogEndOffset() + 1)
		select {
		case <-w.Done():
		case <-prodDone:
			t.Fatal(<-errc)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	h.settle()
	stats, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark()})
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "after concurrent compaction", readRecords(t, h.log), m.expect(stats.FirstDirtyOffset, false, nil))
	h.crash()
	h.open()
	sameRecords(t, "after a crash", readRecords(t, h.log), m.expect(stats.FirstDirtyOffset, false, nil))
}

func TestCompactConflictsWithRetention(t *testing.T) {
	h, m := compactScenario(t)
	old := readRecords(t, h.log)
	var start int64
	h.log.swapHook = func(step string) bool {
		if step == "rewritten" {
			// Between the rewrite and the swap, DeleteRecords drops the
			// first segment the pass cleaned.
			h.log.segMu.RLock()
			next := h.log.segs[0].nextOffset()
			h.log.segMu.RUnlock()
			var err error
			if start, err = h.log.DeleteRecordsBefore(next); err != nil {
				t.Error(err)
			}
		}
		return false
	}
	if _, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark()}); !errors.Is(err, ErrCompactConflict) {
		t.Fatalf("compact racing DeleteRecords: %v", err)
	}
	noLeftovers(t, h.dir)
	var want []crec
	for _, r := range old {
		if r.off >= start {
			want = append(want, r)
		}
	}
	sameRecords(t, "after the conflict", readRecords(t, h.log), want)
	h.log.swapHook = nil
	stats, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark()})
	if err != nil {
		t.Fatal(err)
	}
	want = nil
	for _, r := range m.expect(stats.FirstDirtyOffset, false, nil) {
		if r.off >= start {
			want = append(want, r)
		}
	}
	sameRecords(t, "next pass", readRecords(t, h.log), want)
}

func TestCompactMaxKeys(t *testing.T) {
	h, m := compactScenario(t)
	stats, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark(), MaxKeys: 10})
	if err != nil {
		t.Fatal(err)
	}
	if stats.FirstDirtyOffset >= h.log.HighWatermark() || stats.FirstDirtyOffset == 0 {
		t.Fatalf("a capped pass cleaned up to %d of %d", stats.FirstDirtyOffset, h.log.HighWatermark())
	}
	sameRecords(t, "capped pass", readRecords(t, h.log), m.expect(stats.FirstDirtyOffset, false, nil))
	for range 100 {
		if h.log.DirtyRatio(h.log.HighWatermark()) == 0 {
			break
		}
		if stats, err = h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark(), MaxKeys: 10}); err != nil {
			t.Fatal(err)
		}
	}
	sameRecords(t, "capped passes", readRecords(t, h.log), m.expect(stats.FirstDirtyOffset, false, nil))
}

// Batches that span 2^29 offsets each: merging segments whose records are
// all removed must still keep every segment's offsets within 2^31 of its
// base.
func TestCompactWideOffsetSpans(t *testing.T) {
	h := newHarness(t, smallConfig())
	var m model
	const span = 1 << 29
	for i := range 14 {
		b := buildBatch(t, plainOpts(0, 1), []kv{{key: "same", value: fmt.Sprint(i)}})
		binary.BigEndian.PutUint32(b[23:], span-1) // last offset delta
		binary.BigEndian.PutUint32(b[17:], record.Checksum(b[21:]))
		res, err := h.log.Append(b, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		m.add(res.BaseOffset, []kv{{key: "same", value: fmt.Sprint(i)}})
	}
	h.settle()
	stats, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark()})
	if err != nil {
		t.Fatal(err)
	}
	if stats.SegmentsAfter < 2 {
		t.Fatalf("%+v: %d offsets cannot fit one segment", stats, stats.FirstDirtyOffset)
	}
	want := m.expect(stats.FirstDirtyOffset, false, nil)
	sameRecords(t, "wide spans", readRecords(t, h.log), want)
	h.log.Close()
	h.log = nil
	for _, name := range segmentFiles(t, h.dir) {
		if strings.HasSuffix(name, indexSuffix) {
			os.Remove(filepath.Join(h.dir, name))
		}
	}
	h.open()
	sameRecords(t, "wide spans rebuilt", readRecords(t, h.log), want)
}

// An index written before the version 2 format is still trusted.
// Index files from before Raft indexes (versions 1 and 2) are rebuilt from
// their segments and rewritten in the current version, losing nothing.
func TestOldIndexVersionsRebuilt(t *testing.T) {
	h := newHarness(t, smallConfig())
	for i := range 200 {
		h.appendSynced(testBatch(t, i, 1, int64(i), 200))
	}
	h.log.Close()
	h.log = nil
	var v1 []string
	for _, name := range segmentFiles(t, h.dir) {
		if !strings.HasSuffix(name, indexSuffix) {
			continue
		}
		path := filepath.Join(h.dir, name)
		b, err := ReadSealed(path)
		if err != nil {
			t.Fatal(err)
		}
		old := append(append([]byte(nil), b[:4]...), 0, 0, 0, 1)
		old = append(old, b[12:]...)
		os.WriteFile(path, Seal(old), 0o644)
		v1 = append(v1, name)
	}
	h.open()
	if got := h.readAll(); !equalInts(got, seq(200)) {
		t.Fatalf("read %d records", len(got))
	}
	for _, name := range v1[:len(v1)-1] { // the last segment is active again
		b, _ := ReadSealed(filepath.Join(h.dir, name))
		if v := binary.BigEndian.Uint32(b[4:]); v != indexVersion {
			t.Fatalf("index %s still has version %d", name, v)
		}
	}
	if first, last := h.log.FirstIndex(), h.log.LastIndex(); first != 1 || last != 200 {
		t.Fatalf("raft indexes [%d, %d] after the rebuild", first, last)
	}
}

// FuzzSwapManifest: decoding never panics and what decodes re-encodes to
// the same bytes.
func FuzzSwapManifest(f *testing.F) {
	m := &swapManifest{checkpoint: 99, inputs: []int64{0, 10, 20}, outputs: []swapOutput{{0, 4096}, {15, 100}}}
	enc := m.encode()
	f.Add(enc[:len(enc)-4])
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeSwapManifest(b)
		if err != nil {
			return
		}
		if got := m.encode(); !bytes.Equal(got[:len(got)-4], b) {
			t.Fatalf("re-encoded %x, decoded from %x", got, b)
		}
	})
}

// FuzzRecoverCompacted is FuzzRecover for a segment below the cleaner
// checkpoint, which recovery scans allowing gaps.
func FuzzRecoverCompacted(f *testing.F) {
	var seg []byte
	off := int64(0)
	for i := range 4 {
		b := testBatch(f, i, 1, int64(i), 20)
		record.SetBaseOffset(b, off)
		seg = append(seg, b...)
		off += 3 // a gap of two offsets after each batch
	}
	f.Add(seg, uint8(12))
	f.Add(seg[:len(seg)-5], uint8(0))
	f.Fuzz(func(t *testing.T, segment []byte, next uint8) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, segmentName(0)), segment, 0o644)
		os.WriteFile(filepath.Join(dir, cleanerCheckpointName), Seal([]byte("1")), 0o644)
		// A next segment bounds how far the first may reach.
		os.WriteFile(filepath.Join(dir, segmentName(int64(next))), nil, 0o644)
		l, err := Open(dir, Options{Config: smallConfig()})
		if err != nil {
			return
		}
		defer l.Close()
		last := int64(-1)
		for off := l.LogStartOffset(); off < l.LogEndOffset(); {
			buf, err := l.Read(nil, off, ReadOptions{MaxBytes: 1 << 20, MinOneBatch: true, UpToLogEnd: true})
			if err != nil {
				t.Fatalf("read %d of [%d,%d): %v", off, l.LogStartOffset(), l.LogEndOffset(), err)
			}
			if len(buf) == 0 {
				t.Fatalf("empty read at %d below the end %d", off, l.LogEndOffset())
			}
			for len(buf) > 0 {
				h, err := record.CheckFrame(buf[:record.PeekSize(buf)])
				if err != nil {
					t.Fatalf("recovered a bad batch at %d: %v", off, err)
				}
				if h.BaseOffset <= last || h.LastOffset() < off {
					t.Fatalf("batch [%d, %d] after %d, reading %d", h.BaseOffset, h.LastOffset(), last, off)
				}
				last = h.LastOffset()
				off = h.NextOffset()
				buf = buf[h.Size():]
			}
		}
	})
}

// The leader epochs the log reports after a restart are those of the
// original batches, even where compaction removed an epoch's first batch.
func TestCompactKeepsEpochs(t *testing.T) {
	h := newHarness(t, smallConfig())
	var m model
	epoch := int32(0)
	for i := range 300 {
		if i%37 == 0 {
			epoch++
		}
		kvs := []kv{{key: fmt.Sprint("k", i%9), value: strings.Repeat("e", 150)}}
		res, err := h.log.Append(buildBatch(t, plainOpts(0, 1), kvs), epoch, 0)
		if err != nil {
			t.Fatal(err)
		}
		m.add(res.BaseOffset, kvs)
	}
	h.settle()
	epochs := h.log.Epochs()
	stats, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark()})
	if err != nil {
		t.Fatal(err)
	}
	if stats.RecordsRemoved == 0 {
		t.Fatal("nothing removed")
	}
	h.crash()
	h.open()
	if got := h.log.Epochs(); !slices.Equal(got, epochs) {
		t.Fatalf("epochs after compaction and restart\n got %v\nwant %v", got, epochs)
	}
	sameRecords(t, "epochs", readRecords(t, h.log), m.expect(stats.FirstDirtyOffset, false, nil))
}

// RetainBatch keeps a batch whose records all go as an empty batch with the
// same offsets and producer fields.
func TestCompactRetainBatch(t *testing.T) {
	h := newHarness(t, smallConfig())
	var m model
	const pid = 5
	var lastOfProducer int64
	for i := range 100 {
		bo := record.BatchOptions{FirstTimestamp: 1, ProducerID: pid, ProducerEpoch: 2, BaseSequence: int32(i * 2)}
		h.appendKV(&m, bo, []kv{{key: "p", value: fmt.Sprint(i)}, {key: "q", value: fmt.Sprint(i)}})
		lastOfProducer = m.recs[len(m.recs)-1].off
	}
	// Later records without a producer supersede all of them.
	for i := range 100 {
		h.appendKV(&m, plainOpts(0, 1), []kv{{key: "p", value: strings.Repeat("n", 200)}, {key: "q", value: fmt.Sprint(i)}})
	}
	h.settle()
	stats, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark(), RetainBatch: func(hd *record.Header) bool {
		return hd.ProducerID == pid && hd.LastOffset() == lastOfProducer
	}})
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "retain", readRecords(t, h.log), m.expect(stats.FirstDirtyOffset, false, nil))
	var found []record.Header
	h.log.ScanBatches(0, func(hd *record.Header) error {
		if hd.ProducerID == pid {
			found = append(found, *hd)
		}
		return nil
	})
	if len(found) != 1 || found[0].NumRecords != 0 || found[0].LastOffset() != lastOfProducer ||
		found[0].BaseSequence != 198 || found[0].LastSequence() != 199 || found[0].ProducerEpoch != 2 {
		t.Fatalf("producer batches left: %+v", found)
	}
}

// A replicated log compacts with KeepEntries: every batch stays, as a batch
// without records if need be, so the Raft view (first and last index, each
// entry's term and offsets) is what it was, before and after a restart
// that rebuilds the indexes, while readers see the compacted records.
func TestCompactKeepEntriesKeepsRaftView(t *testing.T) {
	h := newHarness(t, smallConfig())
	var m model
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		kvs := make([]kv, 1+rng.IntN(4))
		for j := range kvs {
			k := fmt.Sprintf("key-%02d", rng.IntN(10))
			kvs[j] = kv{key: k, value: fmt.Sprintf("%s@%d/%s", k, len(m.recs)+j, strings.Repeat("v", 80))}
		}
		res, err := h.log.Append(buildBatch(t, plainOpts(0, 1), kvs), int32(1+i/40), 0)
		if err != nil {
			t.Fatal(err)
		}
		m.add(res.BaseOffset, kvs)
	}
	h.settle()
	last := h.log.LastIndex()
	before, err := h.log.EntryBatches(1, last+1, 1<<30)
	if err != nil || uint64(len(before)) != last || last != 300 {
		t.Fatalf("%d entries of %d before compaction: %v", len(before), last, err)
	}
	headers := make([]record.Header, len(before))
	for i, b := range before {
		if headers[i], err = record.ParseHeader(b); err != nil {
			t.Fatal(err)
		}
	}

	stats, err := h.log.Compact(CompactOptions{UpTo: h.log.HighWatermark(), KeepEntries: true})
	if err != nil {
		t.Fatal(err)
	}
	if stats.RecordsRemoved == 0 || stats.BatchesRemoved != 0 || stats.SegmentsMerged() <= 0 {
		t.Fatalf("stats %+v", stats)
	}
	want := m.expect(stats.FirstDirtyOffset, false, nil)
	check := func(when string) {
		t.Helper()
		if first, got := h.log.FirstIndex(), h.log.LastIndex(); first != 1 || got != last {
			t.Fatalf("%s: raft view [%d, %d], want [1, %d]", when, first, got, last)
		}
		after, err := h.log.EntryBatches(1, last+1, 1<<30)
		if err != nil || len(after) != len(before) {
			t.Fatalf("%s: %d entries: %v", when, len(after), err)
		}
		empty := 0
		for i, b := range after {
			hd, err := record.ParseHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			was := headers[i]
			if hd.BaseOffset != was.BaseOffset || hd.LastOffsetDelta != was.LastOffsetDelta || hd.LeaderEpoch != was.LeaderEpoch {
				t.Fatalf("%s: entry %d is [%d,+%d] epoch %d, was [%d,+%d] epoch %d", when, i+1,
					hd.BaseOffset, hd.LastOffsetDelta, hd.LeaderEpoch, was.BaseOffset, was.LastOffsetDelta, was.LeaderEpoch)
			}
			if term, err := h.log.Term(uint64(i + 1)); err != nil || term != uint64(was.LeaderEpoch) {
				t.Fatalf("%s: term(%d) = %d, %v", when, i+1, term, err)
			}
			if hd.NumRecords == 0 {
				empty++
			}
		}
		if empty == 0 {
			t.Fatalf("%s: no batch was emptied", when)
		}
		sameRecords(t, when, readRecords(t, h.log), want)
	}
	check("after compaction")
	h.reopen()
	check("after reopening")
	h.crash()
	idx, _ := filepath.Glob(filepath.Join(h.dir, "*"+indexSuffix))
	for _, p := range idx {
		os.Remove(p)
	}
	h.open()
	check("after rebuilding every index")
}
