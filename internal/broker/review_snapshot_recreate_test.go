package broker

import (
	"testing"
)

// TestReviewStaleSnapshotAfterRecreate: RunMaintenance iterates a topic list
// taken up front and calls snapshotProducers on every partition in it. If
// the topic is deleted and re-created under the same name meanwhile (both
// are allowed while maintenance runs: maintenance takes no broker lock),
// the old Partition still writes its snapshot to p.log.Dir(), which is now
// the new partition's directory. After a crash the new partition loads the
// old partition's producer table and replays only the batches after the old
// log end, so producers of the new topic whose batches lie before it are
// forgotten and their retries are appended again.
//
// The test runs the maintenance step for the stale partition by hand, at the
// point where the in-flight loop would reach it.
func TestReviewStaleSnapshotAfterRecreate(t *testing.T) {
	t.Run("control-no-stale-snapshot", func(t *testing.T) { staleSnapshotCase(t, false) })
	t.Run("stale-snapshot", func(t *testing.T) { staleSnapshotCase(t, true) })
}

func staleSnapshotCase(t *testing.T, stale bool) {
	dir := t.TempDir()
	b := openBroker(t, dir, nil)
	topic, err := b.CreateTopic(TopicSpec{Name: "p", Partitions: 1, ReplicationFactor: 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	oldP, _ := topic.Partition(0)
	pid1, _ := b.InitProducerID()
	for i := range 3 {
		produce(t, oldP, idemBatch(t, pid1, 0, int32(2*i), 2, 1)) // old log end 6
	}
	// Maintenance has listed the topics; now the topic is deleted and
	// created again.
	if err := b.DeleteTopic("p"); err != nil {
		t.Fatal(err)
	}
	topic, err = b.CreateTopic(TopicSpec{Name: "p", Partitions: 1, ReplicationFactor: 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	newP, _ := topic.Partition(0)
	pid3, _ := b.InitProducerID()
	first := idemBatch(t, pid3, 0, 0, 1, 1)
	retry := append([]byte(nil), first...)
	produce(t, newP, first) // offset 0
	pid2, _ := b.InitProducerID()
	for i := range 9 {
		produce(t, newP, idemBatch(t, pid2, 0, int32(i), 1, 1)) // offsets 1..9
	}
	// The maintenance loop reaches the stale partition.
	if stale {
		if err := oldP.snapshotProducers(false); err != nil {
			t.Logf("stale snapshot: %v", err)
		}
	}
	// Crash: no clean close, so nothing overwrites the snapshot.
	b.syncer.Close()
	for _, tp := range b.topics {
		for _, pp := range tp.partitions {
			pp.log.Sync()
		}
	}

	b2 := openBroker(t, dir, nil)
	defer b2.Close()
	p2, err := b2.Partition("p", 0)
	if err != nil {
		t.Fatal(err)
	}
	res := produce(t, p2, retry)
	if res.BaseOffset != 0 || p2.LogEndOffset() != 10 {
		t.Errorf("retry of producer %d's first batch after restart: base %d, log end %d; want a duplicate answered with base 0 and log end 10 (the old topic's snapshot was loaded)", pid3, res.BaseOffset, p2.LogEndOffset())
	}
}
