package broker

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weir-dev/weir/internal/cluster"
)

// openOneNodeCluster starts a one-node controller and a broker on it.
func openOneNodeCluster(t *testing.T) (*Broker, *cluster.Controller) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctl, err := cluster.Start(ctx, cluster.Config{NodeID: 1, DataDir: t.TempDir(), Listener: ln, RPCAddr: addr,
		Seeds: []string{addr}, KafkaHost: "127.0.0.1", KafkaPort: 9092, TickInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	waitMetadata(t, ctl, "this node registered", func(*cluster.Metadata) bool { return ctl.Ready() })
	b, err := Open(Config{DataDir: t.TempDir(), NodeID: 1, Cluster: ctl}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, ctl
}

// waitMetadata waits on the controller's metadata changes until cond holds.
func waitMetadata(t *testing.T, ctl *cluster.Controller, what string, cond func(*cluster.Metadata) bool) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		ch := ctl.Changed()
		if cond(ctl.Metadata()) {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// stallReconcile takes adminMu, as a reconcile busy elsewhere (opening
// many partitions) holds it, so this node's topic list stops following
// the controller. The returned func, also run at cleanup, lets it go.
func stallReconcile(t *testing.T, b *Broker) (resume func()) {
	b.adminMu.Lock()
	resume = sync.OnceFunc(b.adminMu.Unlock)
	t.Cleanup(resume)
	return resume
}

func layoutNames(ls []TopicLayout) []string {
	var names []string
	for _, l := range ls {
		names = append(names, l.Name)
	}
	return names
}

// A create the controller acknowledged shows in Metadata at once, even on
// a node whose reconcile has not got to it (chaos run 4209050645 saw
// UNKNOWN_TOPIC_OR_PARTITION for it on the controller itself).
func TestMetadataShowsAcknowledgedCreateBeforeReconcile(t *testing.T) {
	b, ctl := openOneNodeCluster(t)
	stallReconcile(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := [16]byte{1}
	if err := ctl.CreateTopic(ctx, "meta-0", id, 2, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Topic("meta-0"); ok {
		t.Fatal("the local topic list has the topic: reconcile was not stalled, the test proves nothing")
	}

	dir := b.TopicDirectory()
	l, ok := dir.Topic("meta-0")
	if !ok {
		t.Fatal("Metadata would answer UNKNOWN_TOPIC_OR_PARTITION for a topic whose creation was acknowledged")
	}
	if l.ID != id || l.Internal || len(l.Partitions) != 2 {
		t.Fatalf("layout %+v, want id %x and 2 partitions", l, id)
	}
	for i, p := range l.Partitions {
		if p.Index != int32(i) || !slices.Equal(p.Replicas, []int32{1}) || !slices.Equal(p.ISR, []int32{1}) {
			t.Fatalf("partition %d: %+v, want replicas and ISR [1]", i, p)
		}
	}
	if byID, ok := dir.TopicByID(id); !ok || byID.Name != "meta-0" {
		t.Fatalf("by id: %+v, %v", byID, ok)
	}
	if names := layoutNames(dir.Topics()); !slices.Contains(names, "meta-0") {
		t.Fatalf("listing all topics gave %v, without meta-0", names)
	}
}

// A delete the controller acknowledged shows in Metadata at once, and the
// name can be used again, even though this node's reconcile has not
// dropped the old topic yet.
func TestMetadataAndCreateFollowAcknowledgedDeleteBeforeReconcile(t *testing.T) {
	b, ctl := openOneNodeCluster(t)
	old, err := b.CreateTopic(TopicSpec{Name: "meta-1", Partitions: 1, ReplicationFactor: 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	resume := stallReconcile(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ctl.DeleteTopic(ctx, "meta-1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Topic("meta-1"); !ok {
		t.Fatal("the local topic list lost the topic: reconcile was not stalled, the test proves nothing")
	}

	dir := b.TopicDirectory()
	if l, ok := dir.Topic("meta-1"); ok {
		t.Fatalf("Metadata would describe deleted topic meta-1: %+v", l)
	}
	if l, ok := dir.TopicByID(old.ID); ok {
		t.Fatalf("Metadata would describe deleted topic %x by id: %+v", old.ID, l)
	}
	if names := layoutNames(dir.Topics()); slices.Contains(names, "meta-1") {
		t.Fatalf("listing all topics gave %v, with deleted meta-1", names)
	}

	// Creating it again must reach the controller, not be refused as
	// existing from the local list. The create blocks once the controller
	// has applied it (it waits for adminMu to bring the local list up to
	// date), so the test lets reconcile go once the controller has it.
	created := make(chan error, 1)
	var again *Topic
	go func() {
		var err error
		again, err = b.CreateTopic(TopicSpec{Name: "meta-1", Partitions: 1, ReplicationFactor: 1}, false)
		created <- err
	}()
	deadline := time.After(time.Minute)
	for {
		ch := ctl.Changed()
		if ti, ok := ctl.Metadata().Topics["meta-1"]; ok && ti.ID != old.ID {
			break
		}
		select {
		case err := <-created:
			t.Fatalf("create after an acknowledged delete: %v", err)
		case <-ch:
		case <-deadline:
			t.Fatal("timed out waiting for the controller to apply the create")
		}
	}
	resume()
	if err := <-created; err != nil {
		t.Fatalf("create after an acknowledged delete: %v", err)
	}
	if want := ctl.Metadata().Topics["meta-1"].ID; again.ID != want || again.ID == old.ID {
		t.Fatalf("create returned topic id %x, want the new %x (old %x)", again.ID, want, old.ID)
	}
}
