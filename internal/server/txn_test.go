package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/server/servertest"
)

// A transactional producer commits some transactions and aborts others; a
// read_committed consumer sees exactly the committed records, a
// read_uncommitted one sees everything.
func TestTransactionsCommitAndAbort(t *testing.T) {
	n := servertest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(mustFranz(t, kgo.SeedBrokers(n.Addr())))
	defer adm.Close()
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "txn"); err != nil {
		t.Fatal(err)
	}
	p := mustFranz(t, kgo.SeedBrokers(n.Addr()), kgo.TransactionalID("tx-1"), kgo.DefaultProduceTopic("txn"))
	defer p.Close()
	want := map[string]bool{}
	total := 0
	for round := range 6 {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			v := fmt.Sprintf("r%d-%d", round, i)
			if err := p.ProduceSync(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			total++
			if round%2 == 0 {
				want[v] = true
			}
		}
		commit := kgo.TransactionEndTry(round%2 == 0)
		if err := p.EndTransaction(ctx, commit); err != nil {
			t.Fatalf("end transaction %d: %v", round, err)
		}
	}
	got := map[string]bool{}
	c := mustFranz(t, kgo.SeedBrokers(n.Addr()), kgo.ConsumeTopics("txn"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer c.Close()
	for len(got) < len(want) {
		fs := c.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !want[string(r.Value)] {
				t.Fatalf("read_committed saw %s from an aborted transaction", r.Value)
			}
			got[string(r.Value)] = true
		})
	}
	// Everything below the end is stable: the committed reader's end offsets
	// match the uncommitted one's.
	ends, err := adm.ListEndOffsets(ctx, "txn")
	if err != nil {
		t.Fatal(err)
	}
	var hw int64
	ends.Each(func(o kadm.ListedOffset) { hw += o.Offset })
	// 300 records + one marker per partition per transaction.
	if hw < int64(total) {
		t.Fatalf("end offsets sum %d < %d records", hw, total)
	}
	u := mustFranz(t, kgo.SeedBrokers(n.Addr()), kgo.ConsumeTopics("txn"), kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer u.Close()
	seen := 0
	for seen < total {
		fs := u.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		seen += fs.NumRecords()
	}
}

// txnRaw drives the transaction APIs request by request, so a test can
// restart the broker between any two of them.
type txnRaw struct {
	t   *testing.T
	ctx context.Context
	cl  *kgo.Client
	id  string
}

func (x txnRaw) initProducerID() (int64, int16) {
	x.t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = &x.id
	req.TransactionTimeoutMillis = 60_000
	req.ProducerID, req.ProducerEpoch = -1, -1
	resp, err := req.RequestWith(x.ctx, x.cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		x.t.Fatalf("InitProducerID %s: %v", x.id, err)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// stageOffset adds group to the transaction and stages offset for
// topic/partition with TxnOffsetCommit.
func (x txnRaw) stageOffset(pid int64, epoch int16, group, topic string, partition int32, offset int64) {
	x.t.Helper()
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = x.id, pid, epoch, group
	addResp, err := add.RequestWith(x.ctx, x.cl)
	if err == nil {
		err = kerr.ErrorForCode(addResp.ErrorCode)
	}
	if err != nil {
		x.t.Fatalf("AddOffsetsToTxn: %v", err)
	}
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch, req.Generation = x.id, group, pid, epoch, -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = partition, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(x.ctx, x.cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
	}
	if err != nil {
		x.t.Fatalf("TxnOffsetCommit: %v", err)
	}
}

func (x txnRaw) endTxn(pid int64, epoch int16, commit bool) {
	x.t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = x.id, pid, epoch, commit
	resp, err := req.RequestWith(x.ctx, x.cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		x.t.Fatalf("EndTxn: %v", err)
	}
}

// stableOffsets is OffsetFetch with RequireStable: "partition:offset" per
// partition, or "partition:ERROR" where the broker refuses.
func (x txnRaw) stableOffsets(group, topic string, partitions ...int32) string {
	x.t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group, req.RequireStable = group, true
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = topic, partitions
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(x.ctx, x.cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		x.t.Fatalf("OffsetFetch: %v", err)
	}
	var out []string
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				out = append(out, fmt.Sprintf("%d:%v", p.Partition, err))
			} else {
				out = append(out, fmt.Sprintf("%d:%d", p.Partition, p.Offset))
			}
		}
	}
	return strings.Join(out, " ")
}

// Offsets a transaction staged with TxnOffsetCommit are settled by its end
// even when the broker restarted in between, and by every restart after it.
func TestTxnOffsetsSettleAcrossRestart(t *testing.T) {
	setup := func(t *testing.T, burnFirstPID bool) (*servertest.Node, txnRaw, int64, int16) {
		n := servertest.Start(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		cl := mustFranz(t, kgo.SeedBrokers(n.Addr()))
		t.Cleanup(cl.Close)
		if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "src"); err != nil {
			t.Fatal(err)
		}
		if burnFirstPID { // producer id 0 has its own test below
			txnRaw{t, ctx, cl, "someone-else"}.initProducerID()
		}
		x := txnRaw{t, ctx, cl, "tx"}
		pid, epoch := x.initProducerID()
		return n, x, pid, epoch
	}
	t.Run("commit-after-restart", func(t *testing.T) {
		n, x, pid, epoch := setup(t, true)
		x.stageOffset(pid, epoch, "g", "src", 0, 5)
		n.Restart()
		x.endTxn(pid, epoch, true)
		if got := x.stableOffsets("g", "src", 0, 1); got != "0:5 1:-1" {
			t.Fatalf("after the commit: %s, want 0:5 1:-1", got)
		}
	})
	t.Run("abort-after-restart", func(t *testing.T) {
		n, x, pid, epoch := setup(t, true)
		x.stageOffset(pid, epoch, "g", "src", 0, 5)
		n.Restart()
		pid, epoch = x.initProducerID() // fences: aborts the open transaction
		if got := x.stableOffsets("g", "src", 0, 1); got != "0:-1 1:-1" {
			t.Fatalf("after the abort: %s, want 0:-1 1:-1", got)
		}
		x.stageOffset(pid, epoch, "g", "src", 1, 7)
		x.endTxn(pid, epoch, true)
		if got := x.stableOffsets("g", "src", 0, 1); got != "0:-1 1:7" {
			t.Fatalf("after the next commit: %s, want 0:-1 1:7", got)
		}
	})
	t.Run("first-producer-id", func(t *testing.T) {
		n, x, pid, epoch := setup(t, false)
		if pid != 0 {
			t.Fatalf("first producer id is %d", pid)
		}
		x.stageOffset(pid, epoch, "g", "src", 0, 5)
		x.endTxn(pid, epoch, true)
		if got := x.stableOffsets("g", "src", 0); got != "0:5" {
			t.Fatalf("after the commit: %s, want 0:5", got)
		}
		n.Restart()
		if got := x.stableOffsets("g", "src", 0); got != "0:5" {
			t.Fatalf("after a restart: %s, want 0:5", got)
		}
	})
}
