package storage

import (
	"fmt"
	"testing"

	"github.com/weir-dev/weir/internal/record"
)

// TestReviewTruncateLeavesStaleReadahead: TruncateTo forgets the read-ahead
// (ra.reset) before it takes any lock, so a reader that is already inside
// Read (holding segMu for reading, past readRecent) when TruncateTo starts
// can start a new read-ahead of the pre-truncation bytes after the reset;
// TruncateTo's segMu.Lock waits for that reader, then truncates. The stale
// read-ahead is keyed only by (segment, position), and the truncated segment
// object lives on, so once new batches are appended at the same positions
// a later Read is served the truncated batches from it.
//
// The test goroutine plays that reader: it runs Read's steps by hand, holding
// segMu.RLock while TruncateTo blocks on segMu.Lock.
func TestReviewTruncateLeavesStaleReadahead(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IndexIntervalBytes = 1 << 20 // no sparse entries: every floor is 0
	h := newHarness(t, cfg)
	l := h.log
	for i := range 10 {
		h.appendSynced(testBatch(t, i, 1, 0, 900))
	}
	opts := ReadOptions{MaxBytes: 2000, MinOneBatch: true}

	// A reader of offset 0 is inside Read: bound taken, segMu held.
	bound := l.visible.Load()
	l.segMu.RLock()
	truncated := make(chan error, 1)
	go func() { truncated <- l.TruncateTo(5) }()
	waitParked(t, "sync.RWMutex.Lock", "storage.(*Log).TruncateTo")
	// TruncateTo has reset the read-ahead and waits for the reader.
	s := l.segs[l.segmentForLocked(0)]
	if _, _, err := l.readSegment(nil, s, 0, bound.pos, opts); err != nil {
		t.Fatal(err)
	}
	l.ra.mu.Lock()
	a := l.ra.cur
	l.ra.mu.Unlock()
	if a == nil {
		t.Fatal("the reader started no read-ahead")
	}
	<-a.done
	l.segMu.RUnlock()
	if err := <-truncated; err != nil {
		t.Fatal(err)
	}

	// New batches take offsets 5 and 6, at the positions of the old ones.
	if base := h.appendSynced(testBatch(t, 500, 1, 0, 900)); base != 5 {
		t.Fatalf("base %d", base)
	}
	h.appendSynced(testBatch(t, 600, 1, 0, 900))

	buf, err := l.Read(nil, 5, opts)
	if err != nil {
		t.Fatal(err)
	}
	d := record.NewDecompressor()
	defer d.Close()
	var got []string
	record.ForEachRecord(buf[:record.PeekSize(buf)], d, func(hd *record.Header, r *record.Record) error {
		got = append(got, fmt.Sprintf("offset %d value %s", hd.BaseOffset+int64(r.OffsetDelta), r.Value[:8]))
		return nil
	})
	if len(got) != 1 || got[0] != "offset 5 value 00000500" {
		t.Errorf("read at 5 after truncation and re-append: %v, want [offset 5 value 00000500] (served the truncated batch from a stale read-ahead)", got)
	}
}
