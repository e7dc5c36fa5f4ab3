package storage

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/weir-dev/weir/internal/record"
)

// FuzzRecover feeds arbitrary bytes to recovery as a segment file (and,
// split off, as its index file). Opening must never panic, and whatever it
// keeps must read back as valid, consecutive batches.
func FuzzRecover(f *testing.F) {
	var seg []byte
	for i := range 4 {
		seg = append(seg, testBatch(f, i, 1, int64(i), 20)...)
	}
	for i := 0; i < len(seg); i++ {
		record.SetBaseOffset(seg[i:], int64(i))
		i += record.PeekSize(seg[i:]) - 1
	}
	f.Add(seg, []byte{}, false)
	f.Add(seg[:len(seg)-7], []byte{}, true)
	f.Add(append(append([]byte(nil), seg...), make([]byte, 100)...), []byte("WIDX"), false)
	f.Fuzz(func(t *testing.T, segment, index []byte, clean bool) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, segmentName(0)), segment, 0o644)
		if len(index) > 0 {
			os.WriteFile(filepath.Join(dir, indexName(0)), index, 0o644)
		}
		if clean {
			os.WriteFile(filepath.Join(dir, cleanMarkerName), Seal([]byte("0")), 0o644)
		}
		cfg := smallConfig()
		l, err := Open(dir, Options{Config: cfg})
		if err != nil {
			return
		}
		defer l.Close()
		next := l.LogStartOffset()
		for next < l.LogEndOffset() {
			buf, err := l.Read(nil, next, ReadOptions{MaxBytes: 1 << 20, MinOneBatch: true, UpToLogEnd: true})
			if err != nil {
				t.Fatalf("read %d of [%d,%d): %v", next, l.LogStartOffset(), l.LogEndOffset(), err)
			}
			if len(buf) == 0 {
				t.Fatalf("empty read at %d below the end %d", next, l.LogEndOffset())
			}
			for len(buf) > 0 {
				h, err := record.CheckFrame(buf[:record.PeekSize(buf)])
				if err != nil {
					t.Fatalf("recovered a bad batch at %d: %v", next, err)
				}
				if h.BaseOffset != next {
					t.Fatalf("batch at %d, want %d", h.BaseOffset, next)
				}
				next = h.NextOffset()
				buf = buf[h.Size():]
			}
		}
	})
}
