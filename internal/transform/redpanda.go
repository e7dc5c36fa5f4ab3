package transform

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/weir-dev/weir/internal/record"
)

// Modules built with Redpanda's Data Transforms SDK run unmodified. They
// are WASI commands whose _start loops forever: it asks the host for a
// batch (read_batch_header, which blocks until there is one and, when
// called again, means the previous batch is done), reads its records one
// by one and writes output records. The host runs _start on a goroutine of
// its own and hands batches over; a call that runs past the budget sets
// the instance's stop flag (watchdog.go), which stops it within a few
// thousand loop iterations.

const redpandaModule = "redpanda_transform"

// Redpanda's host error codes.
const (
	rpNoActiveTransform = -1
	rpInvalidBuffer     = -2
	rpInvalidWrite      = -3
)

// rpCode is a host error code as an i32 result.
func rpCode(c int32) uint64 { return uint64(uint32(c)) }

func importsRedpanda(cm wazero.CompiledModule) bool {
	for _, imp := range cm.ImportedFunctions() {
		if mod, _, _ := imp.Import(); mod == redpandaModule {
			return true
		}
	}
	return false
}

func checkRedpanda(cm wazero.CompiledModule) error {
	if _, ok := cm.ExportedMemories()["memory"]; !ok {
		return fmt.Errorf("%w: it exports no memory named \"memory\"", ErrInvalidModule)
	}
	if _, ok := cm.ExportedFunctions()["_start"]; !ok {
		return fmt.Errorf("%w: a Redpanda transform must export _start", ErrInvalidModule)
	}
	for _, imp := range cm.ImportedFunctions() {
		mod, name, _ := imp.Import()
		switch mod {
		case redpandaModule, wasi_snapshot_preview1.ModuleName, sandboxModule:
		case "redpanda_schema_registry":
			return fmt.Errorf("%w: it uses Redpanda's schema registry (%s), which Weir does not provide", ErrInvalidModule, name)
		default:
			return fmt.Errorf("%w: it imports %s.%s, which Weir does not provide", ErrInvalidModule, mod, name)
		}
	}
	return nil
}

func instantiateRedpandaHost(ctx context.Context, rt wazero.Runtime) error {
	i32 := api.ValueTypeI32
	n := func(k int) []api.ValueType {
		out := make([]api.ValueType, k)
		for j := range out {
			out[j] = i32
		}
		return out
	}
	_, err := rt.NewHostModuleBuilder(redpandaModule).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}), nil, nil).Export("check_abi_version_1").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}), nil, nil).Export("check_abi_version_2").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(rpReadBatchHeader), n(10), n(1)).Export("read_batch_header").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(rpReadNextRecord), n(5), n(1)).Export("read_next_record").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(rpWriteRecord), n(2), n(1)).Export("write_record").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(rpWriteRecordWithOptions), n(4), n(1)).Export("write_record_with_options").
		Instantiate(ctx)
	return err
}

// rpRecord is an input record as the Redpanda ABI hands it over.
type rpRecord struct {
	attrs     byte
	timestamp int64
	offset    int64
	payload   []byte // key, value and headers, as in a Kafka record
}

// rpBatch is one batch on its way through the module.
type rpBatch struct {
	info       BatchInfo
	recs       []rpRecord
	maxPayload int
	next       int // records read so far
	outs       []Output
}

type rpState struct {
	in      chan *rpBatch
	done    chan *rpBatch
	exit    chan error
	quit    chan struct{}
	ready   chan struct{}
	ended   chan struct{} // closed when _start has returned
	once    sync.Once
	stopped sync.Once
	cur     *rpBatch // the guest goroutine's batch
	outputs map[string]int
}

func (s *rpState) stop() { s.stopped.Do(func() { close(s.quit) }) }

// startRedpanda instantiates the module and runs its _start until it asks
// for the first batch.
func (i *Instance) startRedpanda(ctx context.Context) error {
	m := i.m
	w := &lineWriter{log: i.log}
	mc := wazero.NewModuleConfig().WithName("").WithStdout(w).WithStderr(w).WithStdin(eofReader{}).
		WithStartFunctions().
		WithEnv("REDPANDA_INPUT_TOPIC", i.cfg.Input)
	st := &rpState{in: make(chan *rpBatch), done: make(chan *rpBatch), exit: make(chan error, 1),
		quit: make(chan struct{}), ready: make(chan struct{}), ended: make(chan struct{}), outputs: map[string]int{}}
	for k, o := range i.cfg.Outputs {
		mc = mc.WithEnv("REDPANDA_OUTPUT_TOPIC_"+strconv.Itoa(k), o)
		st.outputs[o] = k
	}
	for k, v := range i.cfg.Params {
		mc = mc.WithEnv(k, v)
	}
	mod, err := m.r.rt.InstantiateModule(ctx, m.cm, mc)
	if err != nil {
		return fmt.Errorf("%w in start: %v", ErrTrap, err)
	}
	i.mod, i.mem, i.rp, i.kind = mod, mod.Memory(), st, KindFlatMap
	runCtx := context.WithValue(context.Background(), instanceKey{}, i)
	start := mod.ExportedFunction("_start")
	go func() {
		defer close(st.ended)
		_, err := start.Call(runCtx)
		if err == nil {
			err = errors.New("_start returned")
		}
		st.exit <- err
	}()
	var timeout <-chan time.Time
	if m.r.budget > 0 {
		t := time.NewTimer(m.r.budget)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-st.ready:
		return nil
	case err := <-st.exit:
		i.broken = fmt.Errorf("%w in start: %v", ErrTrap, err)
	case <-timeout:
		i.broken = fmt.Errorf("%w (start, budget %s)", ErrBudget, m.r.budget)
	case <-ctx.Done():
		i.broken = ctx.Err()
	}
	i.Close(ctx)
	return i.broken
}

// processRedpanda hands a batch to the module's loop and waits for it to
// ask for the next.
func (i *Instance) processRedpanda(ctx context.Context, info BatchInfo, records []byte) ([]Output, error) {
	if i.broken != nil {
		return nil, i.broken
	}
	b := &rpBatch{info: info}
	recs, err := splitRecords(records, info.NumRecords)
	if err != nil {
		return nil, err
	}
	for k, rec := range recs {
		attrs, tsDelta, offDelta, payload, ok := recordFields(rec)
		if !ok {
			return nil, fmt.Errorf("%w: record %d header", record.ErrCorrupt, k)
		}
		b.recs = append(b.recs, rpRecord{attrs: attrs, timestamp: info.BaseTimestamp + tsDelta, offset: info.BaseOffset + offDelta, payload: payload})
		b.maxPayload = max(b.maxPayload, len(payload))
	}
	var timeout <-chan time.Time
	if i.m.r.budget > 0 {
		t := time.NewTimer(i.m.r.budget)
		defer t.Stop()
		timeout = t.C
	}
	st := i.rp
	select {
	case st.in <- b:
	case err := <-st.exit:
		return nil, i.breakWith(ctx, fmt.Errorf("%w: %v", ErrTrap, err))
	case <-timeout:
		return nil, i.breakWith(ctx, fmt.Errorf("%w (budget %s)", ErrBudget, i.m.r.budget))
	}
	select {
	case done := <-st.done:
		i.outs = append(i.outs[:0], done.outs...)
		return i.outs, nil
	case err := <-st.exit:
		return nil, i.breakWith(ctx, fmt.Errorf("%w: %v", ErrTrap, err))
	case <-timeout:
		return nil, i.breakWith(ctx, fmt.Errorf("%w (budget %s)", ErrBudget, i.m.r.budget))
	}
}

func (i *Instance) breakWith(ctx context.Context, err error) error {
	i.broken = err
	i.stopGuest()
	i.mod.CloseWithExitCode(ctx, 1)
	return err
}

// guestStopWait bounds how long closing a Redpanda instance waits for its
// _start to end (it traps at its next check once told to stop).
const guestStopWait = 5 * time.Second

// stopGuest ends a Redpanda module's _start before the module is closed
// under it: its blocking host call returns, its next check traps.
func (i *Instance) stopGuest() {
	i.rp.stop()
	i.wd.stopNow()
	t := time.NewTimer(guestStopWait)
	defer t.Stop()
	select {
	case <-i.rp.ended:
	case <-t.C:
	}
}

// Host functions of "redpanda_transform". They run on the guest's
// goroutine.

func rpState0(ctx context.Context) (*Instance, *rpState) {
	i := instanceFrom(ctx)
	if i == nil || i.rp == nil {
		return nil, nil
	}
	return i, i.rp
}

func rpReadBatchHeader(ctx context.Context, mod api.Module, stack []uint64) {
	_, st := rpState0(ctx)
	if st == nil {
		stack[0] = rpCode(rpNoActiveTransform)
		return
	}
	if st.cur != nil {
		select {
		case st.done <- st.cur:
		case <-st.quit:
		}
		st.cur = nil
	}
	st.once.Do(func() { close(st.ready) })
	select {
	case b := <-st.in:
		st.cur = b
	case <-st.quit:
		stack[0] = rpCode(rpNoActiveTransform)
		return
	}
	b, mem := st.cur, mod.Memory()
	h := b.info
	ok := mem.WriteUint64Le(uint32(stack[0]), uint64(h.BaseOffset)) &&
		mem.WriteUint32Le(uint32(stack[1]), uint32(h.NumRecords)) &&
		mem.WriteUint32Le(uint32(stack[2]), 0) && // leader epoch
		mem.WriteUint16Le(uint32(stack[3]), 0) && // attributes: uncompressed
		mem.WriteUint32Le(uint32(stack[4]), uint32(h.LastOffset-h.BaseOffset)) &&
		mem.WriteUint64Le(uint32(stack[5]), uint64(h.BaseTimestamp)) &&
		mem.WriteUint64Le(uint32(stack[6]), uint64(h.MaxTimestamp)) &&
		mem.WriteUint64Le(uint32(stack[7]), ^uint64(0)) && // producer id -1
		mem.WriteUint16Le(uint32(stack[8]), ^uint16(0)) &&
		mem.WriteUint32Le(uint32(stack[9]), ^uint32(0))
	if !ok {
		stack[0] = rpCode(rpInvalidBuffer)
		return
	}
	stack[0] = rpCode(int32(b.maxPayload))
}

func rpReadNextRecord(ctx context.Context, mod api.Module, stack []uint64) {
	_, st := rpState0(ctx)
	if st == nil || st.cur == nil || st.cur.next >= len(st.cur.recs) {
		stack[0] = rpCode(rpNoActiveTransform)
		return
	}
	r := st.cur.recs[st.cur.next]
	mem := mod.Memory()
	if int(uint32(stack[4])) < len(r.payload) {
		stack[0] = rpCode(rpInvalidBuffer)
		return
	}
	ok := mem.WriteByte(uint32(stack[0]), r.attrs) &&
		mem.WriteUint64Le(uint32(stack[1]), uint64(r.timestamp)) &&
		mem.WriteUint64Le(uint32(stack[2]), uint64(r.offset)) &&
		mem.Write(uint32(stack[3]), r.payload)
	if !ok {
		stack[0] = rpCode(rpInvalidBuffer)
		return
	}
	st.cur.next++
	stack[0] = rpCode(int32(len(r.payload)))
}

func rpWriteRecord(ctx context.Context, mod api.Module, stack []uint64) {
	rpWrite(ctx, mod, stack, 0, nil)
}

func rpWriteRecordWithOptions(ctx context.Context, mod api.Module, stack []uint64) {
	opts, ok := mod.Memory().Read(uint32(stack[2]), uint32(stack[3]))
	if !ok || len(opts) < 2 || opts[0] != 0x01 {
		stack[0] = rpCode(rpInvalidWrite)
		return
	}
	topic, rest, ok := nbytes(opts[1:])
	if !ok || len(rest) != 0 {
		stack[0] = rpCode(rpInvalidWrite)
		return
	}
	rpWrite(ctx, mod, stack, -1, topic)
}

// rpWrite records an output of the record read last: to output index out,
// or (out < 0) to the output topic named topic.
func rpWrite(ctx context.Context, mod api.Module, stack []uint64, out int, topic []byte) {
	_, st := rpState0(ctx)
	if st == nil || st.cur == nil || st.cur.next == 0 {
		stack[0] = rpCode(rpNoActiveTransform)
		return
	}
	if out < 0 {
		k, ok := st.outputs[string(topic)]
		if !ok {
			stack[0] = rpCode(rpInvalidWrite)
			return
		}
		out = k
	}
	n := uint32(stack[1])
	view, ok := mod.Memory().Read(uint32(stack[0]), n)
	if !ok {
		stack[0] = rpCode(rpInvalidBuffer)
		return
	}
	src := st.cur.recs[st.cur.next-1]
	o, ok := decodeRPPayload(append([]byte(nil), view...))
	if !ok {
		stack[0] = rpCode(rpInvalidWrite)
		return
	}
	o.Output, o.SourceOffset, o.Timestamp = out, src.offset, src.timestamp
	st.cur.outs = append(st.cur.outs, o)
	stack[0] = uint64(n)
}

// decodeRPPayload parses an output record written through Redpanda's ABI:
// key, value and headers as in a Kafka record. b is untrusted.
func decodeRPPayload(b []byte) (Output, bool) {
	var o Output
	var nh int64
	var ok bool
	if o.Key, b, ok = nbytes(b); !ok {
		return o, false
	}
	if o.Value, b, ok = nbytes(b); !ok {
		return o, false
	}
	if nh, b, ok = varint(b); !ok || nh < 0 || nh > int64(len(b)) {
		return o, false
	}
	for range nh {
		var k, v []byte
		if k, b, ok = nbytes(b); !ok || k == nil {
			return o, false
		}
		if v, b, ok = nbytes(b); !ok {
			return o, false
		}
		o.Headers = append(o.Headers, record.RecordHeader{Key: string(k), Value: v})
	}
	return o, len(b) == 0
}
