package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/server/servertest"
)

// BenchmarkGroupRebalance measures how long a 3-member consumer group takes
// from one member leaving (LeaveGroup on close) until the partitions it
// owned are assigned to the others (ms/assign) and until records of them are
// fetched again (ms/fetch). Members learn of the rebalance from their next
// heartbeat, so the heartbeat interval is a parameter; fetch max wait is
// 500 ms (a long poll in flight delays the first fetch of new partitions).
//
//	go test ./internal/server -run '^$' -bench GroupRebalance -benchtime 5x
func BenchmarkGroupRebalance(b *testing.B) {
	for _, hb := range []time.Duration{3 * time.Second, 500 * time.Millisecond} {
		b.Run(fmt.Sprintf("heartbeat=%v", hb), func(b *testing.B) {
			n := servertest.Start(b, nil)
			ctx := context.Background()
			adm := kadm.NewClient(mustFranzTB(b, kgo.SeedBrokers(n.Addr())))
			defer adm.Close()
			if _, err := adm.CreateTopic(ctx, 6, 1, nil, "rb"); err != nil {
				b.Fatal(err)
			}
			var assign, fetch time.Duration
			for i := range b.N {
				a, f := rebalanceOnce(b, n.Addr(), fmt.Sprintf("g%d", i), hb)
				assign += a
				fetch += f
			}
			b.ReportMetric(float64(assign.Milliseconds())/float64(b.N), "ms/assign")
			b.ReportMetric(float64(fetch.Milliseconds())/float64(b.N), "ms/fetch")
		})
	}
}

func mustFranzTB(tb testing.TB, opts ...kgo.Opt) *kgo.Client {
	tb.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return cl
}

func rebalanceOnce(b *testing.B, addr, group string, hb time.Duration) (assigned, fetched time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	owner := map[int32]int{}    // partition -> member
	var fetchedAfter chan int32 // set once the leave happened
	var start, assignedAt time.Time
	var leavingSet map[int32]bool
	members := make([]*kgo.Client, 3)
	for m := range members {
		m := m
		members[m] = mustFranzTB(b, kgo.SeedBrokers(addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics("rb"),
			kgo.HeartbeatInterval(hb), kgo.FetchMaxWait(500*time.Millisecond), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
				mu.Lock()
				for _, p := range a["rb"] {
					owner[p] = m
					if leavingSet[p] && assignedAt.IsZero() {
						assignedAt = time.Now()
					}
				}
				mu.Unlock()
			}))
		go func() {
			for ctx.Err() == nil {
				fs := members[m].PollFetches(ctx)
				if fs.IsClientClosed() {
					return
				}
				mu.Lock()
				ch := fetchedAfter
				mu.Unlock()
				fs.EachRecord(func(r *kgo.Record) {
					if ch != nil {
						select {
						case ch <- r.Partition:
						default:
						}
					}
				})
			}
		}()
	}
	// Wait until all three own partitions.
	for {
		mu.Lock()
		seen := map[int]bool{}
		for _, m := range owner {
			seen[m] = true
		}
		mu.Unlock()
		if len(seen) == 3 {
			break
		}
		select {
		case <-ctx.Done():
			b.Fatal("group never spread over three members")
		case <-time.After(10 * time.Millisecond):
		}
	}
	mu.Lock()
	var leaving []int32
	for p, m := range owner {
		if m == 2 {
			leaving = append(leaving, p)
		}
	}
	fetchedCh := make(chan int32, 64)
	fetchedAfter = fetchedCh
	leavingSet = map[int32]bool{}
	for _, pt := range leaving {
		leavingSet[pt] = true
	}
	start = time.Now()
	mu.Unlock()

	members[2].Close()
	// Keep producing to the partitions that lost their member until one of
	// the remaining members fetches from them.
	p := mustFranzTB(b, kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer p.Close()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case pt := <-fetchedCh:
			if leavingSet[pt] {
				fetched = time.Since(start)
				members[0].Close()
				members[1].Close()
				mu.Lock()
				assigned = assignedAt.Sub(start)
				mu.Unlock()
				return assigned, fetched
			}
		case <-tick.C:
			for _, pt := range leaving {
				p.Produce(ctx, &kgo.Record{Topic: "rb", Partition: pt, Value: []byte("x")}, nil)
			}
		case <-ctx.Done():
			b.Fatal("partitions of the member that left were never fetched again")
		}
	}
}
