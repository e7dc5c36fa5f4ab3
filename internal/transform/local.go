package transform

import (
	"context"
	"fmt"
	"os"

	"github.com/weir-dev/weir/internal/record"
)

// Local runs a module in the calling process: what `weir produce
// --transform` and `weir consume --transform` use at the edge.
type Local struct {
	rt   *Runtime
	inst *Instance
}

// OpenLocal compiles the module file and starts one instance of it.
func OpenLocal(ctx context.Context, path string, cfg Config, log LogFunc) (*Local, error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rt, err := NewRuntime(ctx, Options{})
	if err != nil {
		return nil, err
	}
	m, err := rt.Compile(ctx, wasm)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	inst, err := m.Instantiate(ctx, cfg, log)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Local{rt: rt, inst: inst}, nil
}

// Apply runs the module over records whose offsets are base plus their
// OffsetDelta and timestamps ts plus their TimestampDelta. The outputs
// are valid until the next call.
func (l *Local) Apply(ctx context.Context, recs []record.Record, base, ts int64) ([]Output, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	b, err := record.Build(record.BatchOptions{FirstTimestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs)
	if err != nil {
		return nil, err
	}
	record.SetBaseOffset(b, base)
	return l.inst.ProcessBatch(ctx, b, nil)
}

// Close stops the module.
func (l *Local) Close(ctx context.Context) {
	l.inst.Close(ctx)
	l.rt.Close(ctx)
}
