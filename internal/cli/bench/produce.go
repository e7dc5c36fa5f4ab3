package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/cli/bench/measure"
)

func newProduce() *cobra.Command {
	o := defaultOptions()
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Produce for --duration and report throughput and ack latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, &o, "produce", func(ctx context.Context) (measure.Result, error) {
				return runProduce(ctx, &o)
			})
		},
	}
	addCommonFlags(cmd, &o)
	addProducerFlags(cmd, &o)
	return cmd
}

// setup creates the topic if needed and returns its partition count.
func setup(ctx context.Context, o *options) (int32, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.seeds()...))
	if err != nil {
		return 0, fmt.Errorf("admin client: %w", err)
	}
	defer cl.Close()
	return ensureTopic(ctx, cl, o.topic, o.partitions, o.topicConfigs)
}

func runProduce(ctx context.Context, o *options) (measure.Result, error) {
	if _, err := setup(ctx, o); err != nil {
		return measure.Result{}, err
	}
	now := time.Now()
	w := window{start: now.Add(o.warmup), end: now.Add(o.warmup + o.duration)}
	st := newProduceStats()
	err := produceLoad(ctx, o, w, st)
	res := st.result(o, "produce", w)
	if err == nil {
		err = st.err()
	}
	return res, err
}
