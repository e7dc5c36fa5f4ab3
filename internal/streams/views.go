package streams

import (
	"context"
	"runtime"

	"github.com/weir-dev/weir/internal/hub"
	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/transform"
)

// viewRunner computes a view's batches: fetches run concurrently, so it
// keeps a pool of module instances, one per fetch in progress.
type viewRunner struct {
	e      *Engine
	def    hub.View
	module *transform.Module
	pool   chan *transform.Instance
	d      *record.Decompressor
}

func newViewRunner(e *Engine, v hub.View, m *transform.Module) *viewRunner {
	n := max(runtime.GOMAXPROCS(0), 2)
	return &viewRunner{e: e, def: v, module: m, pool: make(chan *transform.Instance, n), d: record.NewDecompressor()}
}

func (v *viewRunner) get(ctx context.Context) (*transform.Instance, error) {
	select {
	case i := <-v.pool:
		return i, nil
	default:
		return v.module.Instantiate(ctx, transform.Config{Input: v.def.Source, Outputs: []string{v.def.Name}, Params: v.def.Params},
			func(line string) { v.e.hub.PutLog("view:"+v.def.Name, hub.LogLine{Line: line, Node: v.e.cfg.NodeID}) })
	}
}

func (v *viewRunner) put(ctx context.Context, i *transform.Instance) {
	select {
	case v.pool <- i:
	default:
		i.Close(ctx)
	}
}

// apply is the broker's ViewFunc: the module's outputs become the
// records of a batch spanning the source batch's offsets. A batch the
// module fails on reads as a batch without records (the failure is
// logged), so one bad record cannot stall the view's readers.
func (v *viewRunner) apply(dst, batch []byte) ([]byte, error) {
	ctx := context.Background()
	h, err := record.ParseHeader(batch)
	if err != nil {
		return dst, err
	}
	inst, err := v.get(ctx)
	if err != nil {
		v.e.logger.Warn("view module does not start; the batch reads as a gap", "view", v.def.Name, "offset", h.BaseOffset, "err", err)
		return record.AppendEmpty(dst, &h), nil
	}
	outs, whole, err := inst.ProcessBatchRefs(ctx, batch, v.d)
	if err == nil && whole {
		// A filter kept every record: the view's batch is the source's.
		v.put(ctx, inst)
		return append(dst, batch...), nil
	}
	if err == nil {
		err = inst.ResolveKept(outs)
	}
	if err != nil {
		inst.Close(ctx)
		v.e.logger.Warn("view batch failed; its records read as gaps", "view", v.def.Name, "offset", h.BaseOffset, "err", err)
		return record.AppendEmpty(dst, &h), nil
	}
	recs := make([]record.Record, 0, len(outs))
	last := int32(-1)
	for _, o := range outs {
		delta := int32(o.SourceOffset - h.BaseOffset)
		if o.Err != "" || delta <= last {
			// A failed record is a gap; so is a second output for
			// one offset, which a view cannot hold.
			v.e.logger.Debug("view record left out", "view", v.def.Name, "offset", o.SourceOffset, "err", o.Err)
			continue
		}
		last = delta
		recs = append(recs, record.Record{OffsetDelta: delta, TimestampDelta: o.Timestamp - h.FirstTimestamp,
			Key: o.Key, Value: o.Value, Headers: o.Headers})
	}
	dst = record.AppendRebuilt(dst, &h, recs)
	v.put(ctx, inst)
	return dst, nil
}

func (v *viewRunner) close() {
	for {
		select {
		case i := <-v.pool:
			i.Close(context.Background())
		default:
			v.d.Close()
			return
		}
	}
}

// reconcileViews registers the catalog's views with the broker and drops
// the ones deleted.
func (e *Engine) reconcileViews(ctx context.Context) error {
	vs, err := e.hub.Views(ctx)
	if err != nil {
		return err
	}
	want := map[string]hub.View{}
	for _, v := range vs {
		want[v.Name] = v
	}
	for name, r := range e.views {
		if w, ok := want[name]; !ok || w.Digest != r.def.Digest || !w.Created.Equal(r.def.Created) {
			e.cfg.Source.RemoveView(name)
			delete(e.views, name)
			// A fetch still computing a batch returns its instance to
			// the pool afterwards; the runtime closes it at shutdown.
			r.close()
		}
	}
	for name, v := range want {
		if _, ok := e.views[name]; ok {
			continue
		}
		m, err := e.module(ctx, hub.Definition{Module: v.Module, Digest: v.Digest})
		if err != nil {
			e.logger.Warn("view module", "view", name, "err", err)
			continue
		}
		r := newViewRunner(e, v, m)
		if err := e.cfg.Source.SetView(name, v.Source, r.apply); err != nil {
			e.logger.Debug("view", "view", name, "err", err)
			continue
		}
		e.views[name] = r
	}
	return nil
}
