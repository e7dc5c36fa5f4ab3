package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/cli/bench/measure"
)

// stallTimeout ends a consume that has seen no record for this long.
const stallTimeout = 10 * time.Second

func newConsume() *cobra.Command {
	o := defaultOptions()
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Read a topic from the beginning as fast as possible and report throughput",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, &o, "consume", func(ctx context.Context) (measure.Result, error) {
				return runConsume(ctx, &o)
			})
		},
	}
	addCommonFlags(cmd, &o)
	addConsumerFlags(cmd, &o)
	cmd.Flags().Int64Var(&o.count, "count", 0, "records to read; 0 = everything present when the run starts")
	return cmd
}

// consumeTarget is how many records a consume run reads: --count, or
// everything between the earliest and latest offsets.
func consumeTarget(count int64, earliest, latest map[int32]int64) int64 {
	if count > 0 {
		return count
	}
	var total int64
	for p, hi := range latest {
		total += max(hi-earliest[p], 0)
	}
	return total
}

func runConsume(ctx context.Context, o *options) (measure.Result, error) {
	res := measure.Result{Mode: "consume", Target: o.brokers}
	admin, err := kgo.NewClient(kgo.SeedBrokers(o.seeds()...))
	if err != nil {
		return res, fmt.Errorf("admin client: %w", err)
	}
	defer admin.Close()
	n, err := partitionCount(ctx, admin, o.topic)
	if err != nil {
		return res, err
	}
	earliest, err := offsets(ctx, admin, o.topic, n, -2)
	if err != nil {
		return res, err
	}
	latest, err := offsets(ctx, admin, o.topic, n, -1)
	if err != nil {
		return res, err
	}
	target := consumeTarget(o.count, earliest, latest)
	if target == 0 {
		return res, fmt.Errorf("topic %s is empty", o.topic)
	}

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		records, bytes atomic.Int64
		endOnce        sync.Once
		end            time.Time
		lastSeen       atomic.Int64 // unix nanos of the last fetch with records
	)
	clients := make([]*kgo.Client, 0, o.consumers)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for _, parts := range assign(o.topic, n, o.consumers, earliest) {
		c, err := kgo.NewClient(kgo.SeedBrokers(o.seeds()...), kgo.ConsumePartitions(parts))
		if err != nil {
			return res, fmt.Errorf("consumer client: %w", err)
		}
		clients = append(clients, c)
	}

	start := time.Now()
	lastSeen.Store(start.UnixNano())
	errc := make(chan error, len(clients))
	for _, c := range clients {
		go func() {
			errc <- pollUntilDone(cctx, c, func(fs kgo.Fetches) {
				var nrec, nbytes int64
				fs.EachRecord(func(r *kgo.Record) {
					nrec++
					nbytes += int64(len(r.Value) + len(r.Key))
				})
				if nrec == 0 {
					return
				}
				lastSeen.Store(time.Now().UnixNano())
				bytes.Add(nbytes)
				if records.Add(nrec) >= target {
					endOnce.Do(func() { end = time.Now(); cancel() })
				}
			})
		}()
	}
	stall := time.NewTicker(time.Second)
	defer stall.Stop()
	var runErr error
	for waiting := len(clients); waiting > 0; {
		select {
		case err := <-errc:
			waiting--
			if err != nil && runErr == nil {
				runErr = err
				cancel()
			}
		case now := <-stall.C:
			if now.Sub(time.Unix(0, lastSeen.Load())) > stallTimeout && runErr == nil {
				runErr = fmt.Errorf("no records for %v after %d of %d", stallTimeout, records.Load(), target)
				cancel()
			}
		}
	}
	endOnce.Do(func() { end = time.Now() })
	res.Throughput(records.Load(), bytes.Load(), end.Sub(start))
	res.TotalRecords = res.Records
	return res, runErr
}

// pollUntilDone polls c until ctx ends, handing each fetch to fn. A fetch
// error other than the cancellation ends the poll.
func pollUntilDone(ctx context.Context, c *kgo.Client, fn func(kgo.Fetches)) error {
	for {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		fn(fs)
	}
}
