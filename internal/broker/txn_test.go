package broker

import (
	"errors"
	"testing"
	"time"

	"github.com/weir-dev/weir/internal/clock"
	"github.com/weir-dev/weir/internal/record"
)

func txnBatch(t *testing.T, pid int64, epoch int16, seq int32, values ...string) []byte {
	t.Helper()
	rs := make([]record.Record, len(values))
	for i, v := range values {
		rs[i] = record.Record{Key: []byte(v), Value: []byte(v)}
	}
	b, err := record.Build(record.BatchOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Transactional: true, FirstTimestamp: 1_700_000_000_000}, rs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readCommitted returns the values a read_committed consumer sees.
func readCommitted(t *testing.T, p *Partition) []string {
	t.Helper()
	var out []string
	rr, err := p.Read(nil, 0, 1<<20, true, true)
	if err != nil {
		t.Fatal(err)
	}
	aborted := map[int64][]AbortedTxn{}
	for _, a := range rr.Aborted {
		aborted[a.ProducerID] = append(aborted[a.ProducerID], a)
	}
	for b := rr.Batches; len(b) > 0; b = b[record.PeekSize(b):] {
		record.ForEachRecord(b[:record.PeekSize(b)], nil, func(h *record.Header, r *record.Record) error {
			if h.Control() {
				return nil
			}
			for _, a := range aborted[h.ProducerID] {
				if h.Transactional() && a.FirstOffset <= h.BaseOffset && h.BaseOffset <= a.LastOffset {
					return nil
				}
			}
			out = append(out, string(r.Value))
			return nil
		})
	}
	return out
}

func TestTransactionFencingAndErrors(t *testing.T) {
	b := openBroker(t, t.TempDir(), nil)
	defer b.Close()
	tc := b.Transactions()
	topic, _ := b.CreateTopic(TopicSpec{Name: "t", Partitions: 2, ReplicationFactor: 1}, false)
	p0, _ := topic.Partition(0)

	if _, _, err := tc.InitProducerID("tx", time.Hour, -1, -1); !errors.Is(err, ErrInvalidTxnTimeout) {
		t.Fatalf("timeout over the max: %v", err)
	}
	pid, e0, err := tc.InitProducerID("tx", time.Minute, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	// Producing before adding the partition is refused, nothing written.
	if _, err := p0.Produce(txnBatch(t, pid, e0, 0, "early")); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("produce outside a transaction: %v", err)
	}
	if err := tc.AddPartitions("tx", pid, e0, []TopicPartition{{"nope", 0}}, false); !errors.Is(err, ErrUnknownTopicOrPartition) {
		t.Fatalf("unknown topic: %v", err)
	}
	if err := tc.AddPartitions("tx", pid, e0, []TopicPartition{{"t", 0}}, false); err != nil {
		t.Fatal(err)
	}
	produce(t, p0, txnBatch(t, pid, e0, 0, "a", "b"))
	if lso := p0.LastStableOffset(); lso != 0 {
		t.Fatalf("lso %d with an open transaction at 0", lso)
	}
	// A second instance fences the first: its open transaction is aborted.
	pid2, e1, err := tc.InitProducerID("tx", time.Minute, -1, -1)
	if err != nil || pid2 != pid || e1 <= e0 {
		t.Fatalf("re-init: pid %d epoch %d err %v", pid2, e1, err)
	}
	if _, _, err := tc.EndTxn("tx", pid, e0, true, false); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("fenced EndTxn: %v", err)
	}
	if _, err := p0.Produce(txnBatch(t, pid, e0, 2, "zombie")); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("fenced produce: %v", err)
	}
	if got := readCommitted(t, p0); len(got) != 0 {
		t.Fatalf("aborted data visible to read_committed: %v", got)
	}
	if lso, hw := p0.LastStableOffset(), p0.HighWatermark(); lso != hw {
		t.Fatalf("lso %d != hw %d after the abort", lso, hw)
	}
	if _, _, err := tc.EndTxn("tx", pid, e1, true, false); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("commit with nothing open: %v", err)
	}
	if err := tc.AddPartitions("other", pid, e1, []TopicPartition{{"t", 0}}, false); !errors.Is(err, ErrInvalidProducerMap) {
		t.Fatalf("wrong transactional id: %v", err)
	}
}

func TestTransactionTimeoutAndRestart(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	b := openBroker(t, dir, clk)
	tc := b.Transactions()
	topic, _ := b.CreateTopic(TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 1}, false)
	p, _ := topic.Partition(0)
	pid, ep, _ := tc.InitProducerID("slow", 10*time.Second, -1, -1)
	tc.AddPartitions("slow", pid, ep, []TopicPartition{{"t", 0}}, false)
	produce(t, p, txnBatch(t, pid, ep, 0, "pending"))
	produce(t, p, idemBatch(t, -1, -1, -1, 1, clk.Now().UnixMilli())) // non-transactional, after it

	// The open transaction survives a restart and still holds the LSO.
	b.Close()
	b = openBroker(t, dir, clk)
	defer b.Close()
	tc = b.Transactions()
	p, _ = b.Partition("t", 0)
	if lso := p.LastStableOffset(); lso != 0 {
		t.Fatalf("lso after restart %d", lso)
	}
	if info := tc.Describe([]string{"slow"}); info["slow"].State != txnOngoing {
		t.Fatalf("state after restart %v", info["slow"].State)
	}
	// Past its timeout, maintenance aborts it and fences the producer.
	clk.Advance(11 * time.Second)
	b.RunMaintenance()
	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != hw {
		t.Fatalf("lso %d hw %d after timeout", lso, hw)
	}
	if got := readCommitted(t, p); len(got) != 1 || got[0] != "v" {
		t.Fatalf("read_committed after timeout abort: %v", got)
	}
	if _, _, err := tc.EndTxn("slow", pid, ep, true, false); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("commit after timeout: %v", err)
	}
}

// KIP-890 part 2: the partition is added by the produce itself and every
// EndTxn moves to a new epoch that the markers carry.
func TestTransactionImplicitAddAndEpochBump(t *testing.T) {
	b := openBroker(t, t.TempDir(), nil)
	defer b.Close()
	tc := b.Transactions()
	topic, _ := b.CreateTopic(TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 1}, false)
	p, _ := topic.Partition(0)
	pid, ep, _ := tc.InitProducerID("tv2", time.Minute, -1, -1)
	if err := tc.AddPartitionImplicit(pid, ep, "t", 0); err != nil {
		t.Fatal(err)
	}
	produce(t, p, txnBatch(t, pid, ep, 0, "one"))
	pid2, ep2, err := tc.EndTxn("tv2", pid, ep, true, true)
	if err != nil || pid2 != pid || ep2 != ep+1 {
		t.Fatalf("bumping commit: %d/%d %v", pid2, ep2, err)
	}
	// A retry of that EndTxn (old epoch) is answered with the new epoch.
	if r, re, err := tc.EndTxn("tv2", pid, ep, true, true); err != nil || r != pid || re != ep2 {
		t.Fatalf("retried EndTxn: %d/%d %v", r, re, err)
	}
	// The old epoch can no longer write.
	if err := tc.AddPartitionImplicit(pid, ep, "t", 0); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("implicit add with the old epoch: %v", err)
	}
	// Aborting with nothing open is legal and bumps.
	if _, ep3, err := tc.EndTxn("tv2", pid, ep2, false, true); err != nil || ep3 != ep2+1 {
		t.Fatalf("empty abort: %d %v", ep3, err)
	}
	if got := readCommitted(t, p); len(got) != 1 || got[0] != "one" {
		t.Fatalf("read_committed: %v", got)
	}
}
