package cluster

import (
	"log/slog"
	"testing"

	"github.com/weir-dev/weir/internal/record"
)

// A proposer told its change was applied must find it in Metadata():
// callers answer clients from Metadata() right after an acknowledgement.
func TestProposerHearsOutcomeAfterMetadataIsPublished(t *testing.T) {
	c := &Controller{
		cfg: Config{NodeID: 1}, logger: slog.New(slog.DiscardHandler),
		changed: make(chan struct{}), waiters: map[string]chan Result{}, peers: map[uint64]string{},
		dec: record.NewDecompressor(),
	}
	m, _ := newMetadata().apply(&Command{Op: opRegisterNode, Node: &Node{ID: 1}})
	c.meta.Store(m)

	// Two commands in one entry, each with a waiter that takes its result
	// only when the test is ready. While the test looks at Metadata()
	// after the first result, the second is still undelivered: had the
	// first been delivered before publishing, Apply would be stuck before
	// publishing too, and the check would see the old metadata.
	create := &Command{Op: opCreateTopic, Topic: "orders", TopicID: "00112233445566778899aabbccddeeff", Partitions: 1, Replicas: 1, Req: "create"}
	alloc := &Command{Op: opAllocProducerIDs, Count: 1, Req: "alloc"}
	var recs []record.Record
	for _, cmd := range []*Command{create, alloc} {
		body, err := encodeCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, record.Record{Value: body})
	}
	batch, err := record.Build(record.BatchOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs)
	if err != nil {
		t.Fatal(err)
	}
	createDone, allocDone := make(chan Result), make(chan Result)
	c.waiters[create.Req], c.waiters[alloc.Req] = createDone, allocDone

	type seen struct {
		res     Result
		visible bool
	}
	got := make(chan seen, 1)
	go func() {
		res := <-createDone
		_, visible := c.Metadata().Topics["orders"]
		got <- seen{res, visible}
		<-allocDone
	}()
	(&controllerSM{c: c}).Apply(7, batch)
	s := <-got
	if s.res.Err != nil {
		t.Fatal(s.res.Err)
	}
	if !s.visible {
		t.Fatal("the proposer learned its create was applied before Metadata() showed the topic")
	}
	if c.Metadata().Index != 7 {
		t.Fatalf("metadata index %d, want 7", c.Metadata().Index)
	}
}
