package broker

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// replica drives a partition the way its Raft group drives a replica's:
// the group writes each batch to the log and reports it afterwards, and
// cuts uncommitted entries a new leader overwrote.
type replica struct {
	t  *testing.T
	p  *Partition
	sm *partitionSM
}

func newReplica(t *testing.T) *replica {
	b := openBroker(t, t.TempDir(), nil)
	t.Cleanup(func() { b.Close() })
	topic, err := b.CreateTopic(TopicSpec{Name: "r", Partitions: 1, ReplicationFactor: 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := topic.Partition(0)
	p.replicated = true
	return &replica{t: t, p: p, sm: &partitionSM{p: p}}
}

// write appends batch to the log without reporting it yet.
func (r *replica) write(batch []byte) (index uint64) {
	r.t.Helper()
	ar, err := r.p.log.Append(batch, 1, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.p.log.Sync(); err != nil {
		r.t.Fatal(err)
	}
	return ar.Index
}

// append writes batch and reports it.
func (r *replica) append(batch []byte) {
	r.sm.Appended(r.write(batch), batch)
}

func (r *replica) marker(pid int64, commit bool) []byte {
	b, err := markerBatch(pid, 0, commit, 0, 1_700_000_000_000)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// A deposed leader's copy of a transaction's first batch is cut and the
// new leader's copy lands at a lower offset: the abort must cover the new
// copy. Chaos run 3437325820 showed an aborted record to read_committed
// because the replica kept the cut copy's offset as the transaction's start.
func TestReplicaCutMovesTransactionStart(t *testing.T) {
	r := newReplica(t)
	const other, txn = 7, 8
	r.append(idemBatch(t, other, 0, 0, 1, 1_700_000_000_000)) // 0
	r.append(idemBatch(t, other, 0, 1, 1, 1_700_000_000_000)) // 1, cut below
	r.append(txnBatch(t, txn, 0, 0, "aborted"))               // 2, cut below
	if err := r.p.log.TruncateAfterIndex(1); err != nil {
		t.Fatal(err)
	}
	r.sm.Truncated(1)
	r.append(txnBatch(t, txn, 0, 0, "aborted"))               // 1
	r.append(idemBatch(t, other, 0, 1, 1, 1_700_000_000_000)) // 2
	r.append(r.marker(txn, false))                            // 3
	if got, want := readCommitted(t, r.p), []string{"v", "v"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed sees %q, want %q (aborted %v)", got, want, r.p.aborted)
	}
	if lso := r.p.LastStableOffset(); lso != 4 {
		t.Fatalf("last stable offset %d, want 4", lso)
	}
}

// A snapshot taken while the group has written a batch but not reported it
// must not claim that batch: loading it would skip the batch for good
// (here, the start of an open transaction, which holds back the last
// stable offset).
func TestReplicaSnapshotStopsAtReportedBatches(t *testing.T) {
	r := newReplica(t)
	r.append(idemBatch(t, 7, 0, 0, 1, 1_700_000_000_000)) // 0
	open := txnBatch(t, 8, 0, 0, "open")
	index := r.write(open) // 1, not yet reported
	if err := r.p.snapshotProducers(true); err != nil {
		t.Fatal(err)
	}
	r.sm.Appended(index, open)
	// A restart loads the snapshot and replays the log after it.
	r.p.mu.Lock()
	err := r.p.rebuildProducersLocked()
	r.p.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if lso := r.p.LastStableOffset(); lso != 1 {
		t.Fatalf("last stable offset %d, want 1 (the open transaction's start)", lso)
	}
}

// A snapshot describing batches a cut removed is discarded, so it cannot
// be trusted later once the log has grown back past its offset; the one
// before it, still good, is used instead of replaying the whole log.
func TestReplicaCutDiscardsSnapshotAheadOfLog(t *testing.T) {
	r := newReplica(t)
	r.append(idemBatch(t, 7, 0, 0, 1, 1_700_000_000_000)) // 0
	if err := r.p.snapshotProducers(true); err != nil {   // at offset 1
		t.Fatal(err)
	}
	r.append(txnBatch(t, 8, 0, 0, "cut"))               // 1, cut below
	if err := r.p.snapshotProducers(true); err != nil { // at offset 2
		t.Fatal(err)
	}
	if err := r.p.log.TruncateAfterIndex(1); err != nil {
		t.Fatal(err)
	}
	r.sm.Truncated(1)
	dir := r.p.log.Dir()
	if _, err := os.Stat(filepath.Join(dir, snapshotName)); !os.IsNotExist(err) {
		t.Fatalf("the snapshot ahead of the log is still there (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, prevSnapshotName)); err != nil {
		t.Fatalf("the snapshot before it is gone: %v", err)
	}
	r.append(idemBatch(t, 7, 0, 1, 1, 1_700_000_000_000)) // 1
	r.append(idemBatch(t, 7, 0, 2, 1, 1_700_000_000_000)) // 2
	// A restart now, before the next snapshot.
	r.p.mu.Lock()
	err := r.p.rebuildProducersLocked()
	r.p.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if lso, hw := r.p.LastStableOffset(), r.p.HighWatermark(); lso != hw {
		t.Fatalf("last stable offset %d, want the high watermark %d: the cut transaction is still open", lso, hw)
	}
}
