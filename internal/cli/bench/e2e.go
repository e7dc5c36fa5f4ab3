package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/cli/bench/measure"
)

func newE2E() *cobra.Command {
	o := defaultOptions()
	cmd := &cobra.Command{
		Use:   "e2e",
		Short: "Produce and consume at once and report end-to-end latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, &o, "e2e", func(ctx context.Context) (measure.Result, error) {
				return runE2E(ctx, &o)
			})
		},
	}
	addCommonFlags(cmd, &o)
	addProducerFlags(cmd, &o)
	addConsumerFlags(cmd, &o)
	return cmd
}

// e2eStats is what the consumers see: every record since the run began
// counts towards seen; records sent inside the window go into the
// histogram.
type e2eStats struct {
	seen atomic.Int64
	// want is set once the producers are done: the number of records they
	// had acknowledged. The consumers are done when seen reaches it.
	want     atomic.Int64
	doneOnce sync.Once
	done     chan struct{}

	mu      sync.Mutex
	latency *measure.Histogram
}

func newE2EStats() *e2eStats {
	return &e2eStats{done: make(chan struct{}), latency: measure.NewHistogram()}
}

// add counts n records and closes done once want is set and reached. The
// producer side stores want and then calls check, so between the two one
// of them always sees the other's write.
func (e *e2eStats) add(n int64) {
	e.seen.Add(n)
	e.check()
}

func (e *e2eStats) check() {
	if w := e.want.Load(); w > 0 && e.seen.Load() >= w {
		e.doneOnce.Do(func() { close(e.done) })
	}
}

func runE2E(ctx context.Context, o *options) (measure.Result, error) {
	n, err := setup(ctx, o)
	if err != nil {
		return measure.Result{}, err
	}
	admin, err := kgo.NewClient(kgo.SeedBrokers(o.seeds()...))
	if err != nil {
		return measure.Result{}, fmt.Errorf("admin client: %w", err)
	}
	// Consumers start exactly at today's end so that they see this run's
	// records and only those.
	latest, err := offsets(ctx, admin, o.topic, n, -1)
	admin.Close()
	if err != nil {
		return measure.Result{}, err
	}

	now := time.Now()
	w := window{start: now.Add(o.warmup), end: now.Add(o.warmup + o.duration)}
	es := newE2EStats()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	cerrs := make(chan error, o.consumers)
	for _, parts := range assign(o.topic, n, o.consumers, latest) {
		c, err := kgo.NewClient(kgo.SeedBrokers(o.seeds()...), kgo.ConsumePartitions(parts))
		if err != nil {
			cancel()
			wg.Wait()
			return measure.Result{}, fmt.Errorf("consumer client: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			// Each consumer owns a histogram; they are merged at the end.
			h := measure.NewHistogram()
			defer func() {
				es.mu.Lock()
				es.latency.Merge(h)
				es.mu.Unlock()
			}()
			cerrs <- pollUntilDone(cctx, c, func(fs kgo.Fetches) {
				// The records of one fetch reach the application together.
				now := time.Now()
				var nrec int64
				fs.EachRecord(func(r *kgo.Record) {
					nrec++
					if sent, err := measure.ReadStamp(r.Value); err == nil && w.contains(sent) {
						h.RecordDuration(now.Sub(sent))
					}
				})
				es.add(nrec)
			})
		}()
	}

	st := newProduceStats()
	perr := produceLoad(ctx, o, w, st)
	if perr == nil {
		perr = st.err()
	}
	var drainErr error
	if produced := st.produced.Load(); produced > 0 {
		es.want.Store(produced)
		es.check()
	} else {
		es.doneOnce.Do(func() { close(es.done) })
	}
	select {
	case <-es.done:
	case <-time.After(o.drainTimeout):
		drainErr = fmt.Errorf("consumers saw %d of %d records within %v", es.seen.Load(), es.want.Load(), o.drainTimeout)
	case <-ctx.Done():
		drainErr = ctx.Err()
	}
	cancel()
	wg.Wait()
	close(cerrs)
	for err := range cerrs {
		if err != nil && drainErr == nil {
			drainErr = err
		}
	}

	res := st.result(o, "e2e", w)
	es.mu.Lock()
	res.E2E = measure.Summarize(es.latency)
	es.mu.Unlock()
	if perr != nil {
		return res, perr
	}
	return res, drainErr
}
