package produce

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

// edgeTransform runs a module over records before they are sent, in
// batches of up to size records.
type edgeTransform struct {
	local   *transform.Local
	size    int
	pending []*kgo.Record
	recs    []record.Record
	next    int64 // the offset given to the next record: its line number
	warn    io.Writer
}

func newEdgeTransform(ctx context.Context, path, topic string, params []clientcmd.KV, size int, warn io.Writer) (*edgeTransform, error) {
	cfg := transform.Config{Outputs: []string{topic}, Params: map[string]string{}}
	for _, kv := range params {
		cfg.Params[kv.Key] = kv.Value
	}
	local, err := transform.OpenLocal(ctx, path, cfg, func(line string) { fmt.Fprintln(warn, "module:", line) })
	if err != nil {
		return nil, err
	}
	return &edgeTransform{local: local, size: size, warn: warn}, nil
}

func (x *edgeTransform) close(ctx context.Context) { x.local.Close(ctx) }

// add queues a record and runs the module once a batch is full.
func (x *edgeTransform) add(ctx context.Context, r *kgo.Record, send func(context.Context, *kgo.Record)) error {
	x.pending = append(x.pending, r)
	if len(x.pending) >= x.size {
		return x.flush(ctx, send)
	}
	return nil
}

// flush runs the module over the queued records and sends what it emits.
func (x *edgeTransform) flush(ctx context.Context, send func(context.Context, *kgo.Record)) error {
	if len(x.pending) == 0 {
		return nil
	}
	base := x.next
	x.recs = x.recs[:0]
	for i, r := range x.pending {
		rec := record.Record{OffsetDelta: int32(i), Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			rec.Headers = append(rec.Headers, record.RecordHeader{Key: h.Key, Value: h.Value})
		}
		x.recs = append(x.recs, rec)
	}
	now := time.Now().UnixMilli()
	outs, err := x.local.Apply(ctx, x.recs, base, now)
	if err != nil {
		return fmt.Errorf("transform lines %d-%d: %w", base+1, base+int64(len(x.pending)), err)
	}
	for _, o := range outs {
		src := x.pending[o.SourceOffset-base]
		if o.Err != "" {
			fmt.Fprintf(x.warn, "weir: line %d not sent: %s\n", o.SourceOffset+1, o.Err)
			continue
		}
		out := &kgo.Record{Key: clone(o.Key), Value: clone(o.Value), Partition: src.Partition, Timestamp: time.UnixMilli(o.Timestamp)}
		for _, h := range o.Headers {
			out.Headers = append(out.Headers, kgo.RecordHeader{Key: h.Key, Value: clone(h.Value)})
		}
		send(ctx, out)
	}
	x.next += int64(len(x.pending))
	x.pending = x.pending[:0]
	return nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
