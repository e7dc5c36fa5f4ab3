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

func TestGroupSmoke(t *testing.T) {
	n := servertest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(mustFranz(t, kgo.SeedBrokers(n.Addr())))
	defer adm.Close()
	adm.CreateTopic(ctx, 4, 1, nil, "gs")
	p := mustFranz(t, kgo.SeedBrokers(n.Addr()), kgo.DefaultProduceTopic("gs"))
	for i := range 1000 {
		p.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c := mustFranz(t, kgo.SeedBrokers(n.Addr()), kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("gs"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < 1000 {
		fs := c.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got += fs.NumRecords()
	}
	if err := c.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
	offs, err := adm.FetchOffsets(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
	if sum != 1000 {
		t.Fatalf("committed offsets sum %d", sum)
	}
	n.Restart()
	adm2 := kadm.NewClient(mustFranz(t, kgo.SeedBrokers(n.Addr())))
	defer adm2.Close()
	offs, err = adm2.FetchOffsets(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	sum = 0
	offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
	if sum != 1000 {
		t.Fatalf("committed offsets after restart sum %d", sum)
	}
}
