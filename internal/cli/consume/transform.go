package consume

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/transform"
)

// readTransform runs a module over each record consumed; the records it
// emits are printed in its place (same topic, partition and offset).
type readTransform struct {
	local *transform.Local
	recs  []record.Record
	outs  []*kgo.Record
	warn  io.Writer
}

func newReadTransform(ctx context.Context, path, topic string, params []clientcmd.KV, warn io.Writer) (*readTransform, error) {
	cfg := transform.Config{Input: topic, Outputs: []string{topic}, Params: map[string]string{}}
	for _, kv := range params {
		cfg.Params[kv.Key] = kv.Value
	}
	local, err := transform.OpenLocal(ctx, path, cfg, func(line string) { fmt.Fprintln(warn, "module:", line) })
	if err != nil {
		return nil, err
	}
	return &readTransform{local: local, warn: warn}, nil
}

func (x *readTransform) close(ctx context.Context) { x.local.Close(ctx) }

// apply returns what the module emits for r; a record it fails on is
// reported on stderr and yields nothing.
func (x *readTransform) apply(ctx context.Context, r *kgo.Record) ([]*kgo.Record, error) {
	rec := record.Record{Key: r.Key, Value: r.Value}
	for _, h := range r.Headers {
		rec.Headers = append(rec.Headers, record.RecordHeader{Key: h.Key, Value: h.Value})
	}
	x.recs = append(x.recs[:0], rec)
	outs, err := x.local.Apply(ctx, x.recs, r.Offset, r.Timestamp.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("transform %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	x.outs = x.outs[:0]
	for _, o := range outs {
		if o.Err != "" {
			fmt.Fprintf(x.warn, "weir: %s/%d@%d: %s\n", r.Topic, r.Partition, r.Offset, o.Err)
			continue
		}
		out := &kgo.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: o.Key, Value: o.Value,
			Timestamp: time.UnixMilli(o.Timestamp), LeaderEpoch: r.LeaderEpoch}
		for _, h := range o.Headers {
			out.Headers = append(out.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		x.outs = append(x.outs, out)
	}
	return x.outs, nil
}
