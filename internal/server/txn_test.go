package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

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
