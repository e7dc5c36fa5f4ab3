package transform

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/weir-dev/weir/internal/record"
)

// LogFunc receives what a module logs: lines it writes to stdout or
// stderr and its log calls.
type LogFunc func(line string)

// Instance is one running copy of a module. It is not safe for concurrent
// use. After ErrTrap or ErrBudget it is closed and every call fails; make
// a new one from the Module.
type Instance struct {
	m        *Module
	mod      api.Module
	mem      api.Memory
	alloc    api.Function
	process  api.Function
	snapshot api.Function
	restore  api.Function
	kind     Kind
	cfg      Config
	log      LogFunc
	stack    [2]uint64
	inPtr    uint32 // the module's input buffer
	inCap    uint32 // its size as last asked for
	errMsg   string // set by the module's set_error
	out      []byte
	in       []byte // decompressed input records
	// The input of the last call, which keep entries refer to.
	lastRecords []byte
	lastInfo    BatchInfo
	outs        []Output
	hdrs        []record.RecordHeader
	broken      error
	wd          *watchdog
	rp          *rpState // modules built with Redpanda's SDK
	// table: the module takes a record table with its input frames.
	table bool
	frame []byte // the input frame's header and record table
}

type instanceKey struct{}

func instanceFrom(ctx context.Context) *Instance {
	i, _ := ctx.Value(instanceKey{}).(*Instance)
	return i
}

// lineWriter hands complete lines of a module's stdout/stderr to a LogFunc.
type lineWriter struct {
	log LogFunc
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.log(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 4096 {
		w.log(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

// Instantiate starts an instance and initializes it with cfg. The module
// sees no filesystem, network, environment or real clock.
func (m *Module) Instantiate(ctx context.Context, cfg Config, log LogFunc) (*Instance, error) {
	if log == nil {
		log = func(string) {}
	}
	i := &Instance{m: m, cfg: cfg, log: log, wd: &watchdog{budget: m.r.budget}}
	if m.redpanda {
		return i, i.startRedpanda(ctx)
	}
	w := &lineWriter{log: log}
	// _initialize is called below, under the budget, once the stop flag
	// can be reached.
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStdout(w).WithStderr(w).WithStdin(eofReader{}).
		WithStartFunctions()
	mod, err := m.r.rt.InstantiateModule(context.WithValue(ctx, instanceKey{}, i), m.cm, mc)
	if err != nil {
		return nil, fmt.Errorf("%w in start: %v", ErrTrap, err)
	}
	i.mod = mod
	i.mem = mod.Memory()
	if start := mod.ExportedFunction("_initialize"); start != nil {
		if _, err := i.call(ctx, start); err != nil {
			i.Close(ctx)
			return nil, err
		}
	}
	i.alloc = mod.ExportedFunction("weir_alloc")
	i.process = mod.ExportedFunction("weir_process")
	i.snapshot = mod.ExportedFunction("weir_snapshot")
	i.restore = mod.ExportedFunction("weir_restore")
	i.table = mod.ExportedFunction(recordTableMarker) != nil
	frame := appendInitFrame(nil, cfg)
	if err := i.write(ctx, frame); err != nil {
		i.Close(ctx)
		return nil, err
	}
	k, err := i.call(ctx, mod.ExportedFunction("weir_init"), uint64(len(frame)))
	if err != nil {
		i.Close(ctx)
		return nil, err
	}
	if int32(k) < 0 {
		i.Close(ctx)
		return nil, fmt.Errorf("%w: init: %s", ErrModule, i.takeError())
	}
	i.kind = Kind(int32(k))
	if i.kind < KindFilter || i.kind > KindAggregate {
		i.Close(ctx)
		return nil, fmt.Errorf("%w: init returned unknown kind %d", ErrInvalidModule, int32(k))
	}
	return i, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// Kind is what the module said it does.
func (i *Instance) Kind() Kind { return i.kind }

// Close stops the instance.
func (i *Instance) Close(ctx context.Context) {
	if i.rp != nil {
		i.stopGuest()
	}
	if i.wd != nil {
		i.wd.close()
	}
	if i.mod != nil {
		i.mod.Close(ctx)
	}
	if i.broken == nil {
		i.broken = errors.New("transform instance closed")
	}
}

// call runs one export with the time budget.
func (i *Instance) call(ctx context.Context, fn api.Function, args ...uint64) (uint64, error) {
	if i.broken != nil {
		return 0, i.broken
	}
	copy(i.stack[:], args)
	i.wd.arm()
	err := fn.CallWithStack(context.WithValue(ctx, instanceKey{}, i), i.stack[:])
	if i.wd.disarm() {
		err = fmt.Errorf("%w (%s, budget %s)", ErrBudget, fn.Definition().Name(), i.m.r.budget)
	} else if err != nil {
		msg := err.Error()
		if i.errMsg != "" {
			msg = i.takeError() + ": " + msg
		}
		err = fmt.Errorf("%w in %s: %s", ErrTrap, fn.Definition().Name(), msg)
	}
	if err != nil {
		i.broken = err
		i.mod.Close(ctx)
		return 0, err
	}
	return i.stack[0], nil
}

func (i *Instance) takeError() string {
	msg := i.errMsg
	i.errMsg = ""
	if msg == "" {
		msg = "no message"
	}
	return msg
}

// write copies b into the module's input buffer, growing it first if need
// be.
func (i *Instance) write(ctx context.Context, b ...[]byte) error {
	n := 0
	for _, p := range b {
		n += len(p)
	}
	view, err := i.input(ctx, n)
	if err != nil {
		return err
	}
	at := 0
	for _, p := range b {
		at += copy(view[at:], p)
	}
	return nil
}

// input returns the module's input buffer, grown first to at least n
// bytes if need be: a view of the module's memory, valid until the next
// call into the module.
func (i *Instance) input(ctx context.Context, n int) ([]byte, error) {
	if n > math.MaxUint32/2 {
		return nil, fmt.Errorf("input frame of %d bytes is too large", n)
	}
	if uint32(n) > i.inCap || i.inCap == 0 {
		want := max(uint32(n), 2*i.inCap, 64<<10)
		ptr, err := i.call(ctx, i.alloc, uint64(want))
		if err != nil {
			return nil, err
		}
		i.inPtr, i.inCap = uint32(ptr), want
	}
	view, ok := i.mem.Read(i.inPtr, i.inCap)
	if !ok {
		i.broken = fmt.Errorf("%w: input buffer [%d, +%d] outside its memory", ErrTrap, i.inPtr, i.inCap)
		i.mod.Close(ctx)
		return nil, i.broken
	}
	return view[:i.inCap:i.inCap], nil
}

// writeCompressed decompresses a compressed batch's records straight into
// the module's input buffer, behind room for the frame's header and record
// table, then writes those in front: one pass over the records rather
// than decompressing and then copying. It returns the frame's length and
// the records, a view of the module's memory. ok is false, with nothing
// done, for a batch it leaves to processBatch's general path.
func (i *Instance) writeCompressed(ctx context.Context, batch []byte, d *record.Decompressor) (info BatchInfo, records []byte, n int, ok bool, err error) {
	h, info, body, err := storedBatch(batch)
	if err != nil {
		return info, nil, 0, true, err
	}
	// The record count is not checked until the table is built, after
	// decompressing: it may not make the buffer grow much for the table.
	if h.Compression() == record.CompressionNone || h.NumRecords < 0 || int64(h.NumRecords) > max(int64(i.inCap), 1<<20)/tableEntrySize {
		return info, nil, 0, false, nil
	}
	head := batchHeaderSize
	if i.table {
		head += tableEntrySize * int(h.NumRecords)
	}
	view, err := i.input(ctx, head+2*len(body))
	if err != nil {
		return info, nil, 0, true, err
	}
	records, err = decompress(d, h.Compression(), body, view[head:head])
	if err != nil {
		return info, nil, 0, true, err
	}
	if inPlace := len(records) == 0 || (len(view) > head && &records[0] == &view[head : head+1][0]); !inPlace {
		// It did not fit, and was decompressed into a new buffer
		// instead: copied in, into room made for it.
		if view, err = i.input(ctx, head+len(records)); err != nil {
			return info, nil, 0, true, err
		}
		records = view[head : head+copy(view[head:], records)]
	}
	frame, err := appendInputFrame(view[:0:head], info, records, i.table)
	if err != nil {
		return info, nil, 0, true, err
	}
	if len(frame) != head || &frame[0] != &view[0] {
		return info, nil, 0, true, fmt.Errorf("%w: input frame of %d bytes, %d expected", record.ErrCorrupt, len(frame), head)
	}
	return info, records, head + len(records), true, nil
}

// Process runs the module over one batch: info and the batch's records
// section, uncompressed. The outputs alias the instance's buffers and
// records, and are valid until its next call. A record the module failed on comes back as
// an Output with Err set; an error means the whole batch failed.
func (i *Instance) Process(ctx context.Context, info BatchInfo, records []byte) ([]Output, error) {
	return i.run(ctx, info, records, true)
}

func (i *Instance) run(ctx context.Context, info BatchInfo, records []byte, resolve bool) ([]Output, error) {
	outs, _, err := i.runFrame(ctx, info, records, resolve)
	return outs, err
}

// runFrame is run; unless resolve, a batch the module kept whole comes
// back as whole, with no outputs.
func (i *Instance) runFrame(ctx context.Context, info BatchInfo, records []byte, resolve bool) (outs []Output, whole bool, err error) {
	if i.rp != nil {
		outs, err := i.processRedpanda(ctx, info, records)
		return outs, false, err
	}
	if i.frame, err = appendInputFrame(i.frame[:0], info, records, i.table); err != nil {
		return nil, false, err
	}
	if err := i.write(ctx, i.frame, records); err != nil {
		return nil, false, err
	}
	return i.callProcess(ctx, info, records, len(i.frame)+len(records), resolve)
}

// callProcess runs the module over the input frame of inLen bytes written to
// its input buffer, for records, and decodes its output.
func (i *Instance) callProcess(ctx context.Context, info BatchInfo, records []byte, inLen int, resolve bool) (outs []Output, whole bool, err error) {
	res, err := i.call(ctx, i.process, uint64(inLen))
	if err != nil {
		return nil, false, err
	}
	if int64(res) < 0 {
		return nil, false, fmt.Errorf("%w: %s", ErrModule, i.takeError())
	}
	ptr, n := uint32(res>>32), uint32(res)
	view, ok := i.mem.Read(ptr, n)
	if !ok {
		return nil, false, fmt.Errorf("%w: output [%d, +%d] outside its memory", ErrBadOutput, ptr, n)
	}
	last := info.BaseOffset + int64(max(info.NumRecords, 1)) - 1
	if info.NumRecords > 0 {
		// A batch's records may span more offsets than it has records
		// (compaction), so the bound is the last offset the caller gave.
		last = max(last, info.LastOffset)
	}
	i.lastRecords, i.lastInfo = records, info
	if !resolve && last-info.BaseOffset+1 == int64(info.NumRecords) && keepsAll(view, int(info.NumRecords)) {
		return nil, true, nil
	}
	i.out = append(i.out[:0], view...)
	i.outs, i.hdrs, err = decodeOutputInto(i.outs[:0], i.hdrs, i.out, records, info.BaseOffset, info.BaseTimestamp, last,
		int(info.NumRecords), len(i.cfg.Outputs))
	if err == nil && resolve {
		err = i.ResolveKept(i.outs)
	}
	return i.outs, false, err
}

// WholeKeyless reports whether every record of the batch ProcessBatchRefs
// last reported kept whole has a null key (which decides whether the batch
// may go whole to one partition of several). It reads the keys' lengths
// from the record table it gave the module, without decoding the records;
// false if there was no table.
func (i *Instance) WholeKeyless() bool {
	n := int(i.lastInfo.NumRecords)
	if !i.table || n <= 0 {
		return false
	}
	tab, ok := i.mem.Read(i.inPtr+batchHeaderSize, uint32(n*tableEntrySize))
	if !ok {
		return false
	}
	for k := 0; k < n; k++ {
		if int32(binary.LittleEndian.Uint32(tab[k*tableEntrySize+tableKeyLen:])) != -1 {
			return false
		}
	}
	return true
}

// ExpandWhole returns, for a batch ProcessBatchRefs reported kept whole,
// the references it would otherwise have returned: one per record, in
// offset order, for output 0.
func (i *Instance) ExpandWhole() []Output {
	i.outs = i.outs[:0]
	for k := range int64(i.lastInfo.NumRecords) {
		i.outs = append(i.outs, Output{SourceOffset: i.lastInfo.BaseOffset + k, Kept: true, ref: true})
	}
	return i.outs
}

// ResolveKept fills in the records of outs (what ProcessBatchRefs
// returned last) that are references to input records.
func (i *Instance) ResolveKept(outs []Output) error {
	var err error
	i.hdrs, err = resolveKept(outs, i.hdrs, i.lastRecords, i.lastInfo.BaseOffset, i.lastInfo.BaseTimestamp)
	return err
}

// ProcessBatch runs the module over a stored Kafka v2 batch (any codec).
func (i *Instance) ProcessBatch(ctx context.Context, batch []byte, d *record.Decompressor) ([]Output, error) {
	outs, _, err := i.processBatch(ctx, batch, d, true)
	return outs, err
}

// ProcessBatchRefs is ProcessBatch, except that a record the module kept
// unchanged comes back as a reference (Kept set, with only Output and
// SourceOffset) until ResolveKept fills it in: a caller that writes a
// batch kept whole on as it is never decodes its records. A batch whose
// every record the module kept for output 0 (a filter that dropped
// nothing), with no gaps in its offsets, comes back as whole and no
// outputs (ExpandWhole lists them).
func (i *Instance) ProcessBatchRefs(ctx context.Context, batch []byte, d *record.Decompressor) (outs []Output, whole bool, err error) {
	return i.processBatch(ctx, batch, d, false)
}

func (i *Instance) processBatch(ctx context.Context, batch []byte, d *record.Decompressor, resolve bool) ([]Output, bool, error) {
	if i.rp == nil {
		// Compressed records go straight into the module's memory,
		// which the outputs may then point into until the next call.
		info, records, n, ok, err := i.writeCompressed(ctx, batch, d)
		if err != nil {
			return nil, false, err
		}
		if ok {
			return i.callProcess(ctx, info, records, n, resolve)
		}
	}
	// Decompressed into i.in, which the outputs may point into until
	// the next call.
	info, body, err := batchBody(batch, d, i.in[:0])
	if err != nil {
		return nil, false, err
	}
	if !aliases(body, batch) {
		i.in = body
	}
	return i.runFrame(ctx, info, body, resolve)
}

// aliases says whether body is batch's own records section.
func aliases(body, batch []byte) bool {
	return len(body) > 0 && len(batch) > record.HeaderSize && &body[0] == &batch[record.HeaderSize]
}

// batchBody returns a stored batch's header fields and its records
// section: the batch's own bytes, or for a compressed batch the records
// decompressed and appended to dst.
func batchBody(batch []byte, d *record.Decompressor, dst []byte) (BatchInfo, []byte, error) {
	h, info, body, err := storedBatch(batch)
	if err != nil {
		return BatchInfo{}, nil, err
	}
	if c := h.Compression(); c != record.CompressionNone {
		if body, err = decompress(d, c, body, dst); err != nil {
			return info, nil, err
		}
	}
	return info, body, nil
}

// storedBatch parses a stored batch's header and returns it with what the
// module is told of the batch and the records section as stored.
func storedBatch(batch []byte) (record.Header, BatchInfo, []byte, error) {
	h, err := record.ParseHeader(batch)
	if err != nil {
		return h, BatchInfo{}, nil, err
	}
	if h.Size() > len(batch) || h.Size() < record.HeaderSize {
		return h, BatchInfo{}, nil, fmt.Errorf("%w: batch length %d in %d bytes", record.ErrCorrupt, h.Size(), len(batch))
	}
	info := BatchInfo{BaseOffset: h.BaseOffset, BaseTimestamp: h.FirstTimestamp, MaxTimestamp: h.MaxTimestamp,
		NumRecords: h.NumRecords, LastOffset: h.LastOffset(), LogAppendTime: h.LogAppendTime()}
	return h, info, batch[record.HeaderSize:h.Size()], nil
}

// decompress appends body, compressed with c, decompressed to dst; with a
// decompressor of its own if d is nil.
func decompress(d *record.Decompressor, c record.Compression, body, dst []byte) ([]byte, error) {
	if d == nil {
		d = record.NewDecompressor()
		defer d.Close()
	}
	return d.DecompressInto(c, body, dst, record.DefaultLimits.MaxDecompressedBytes)
}

// Snapshot returns an aggregate's state (nil for modules that keep none).
func (i *Instance) Snapshot(ctx context.Context) ([]byte, error) {
	if i.snapshot == nil {
		return nil, nil
	}
	res, err := i.call(ctx, i.snapshot)
	if err != nil {
		return nil, err
	}
	view, ok := i.mem.Read(uint32(res>>32), uint32(res))
	if !ok {
		return nil, fmt.Errorf("%w: snapshot outside its memory", ErrBadOutput)
	}
	return append([]byte(nil), view...), nil
}

// Restore gives an aggregate back the state Snapshot returned.
func (i *Instance) Restore(ctx context.Context, state []byte) error {
	if i.restore == nil || state == nil {
		return nil
	}
	if err := i.write(ctx, state); err != nil {
		return err
	}
	res, err := i.call(ctx, i.restore, uint64(len(state)))
	if err != nil {
		return err
	}
	if int32(res) < 0 {
		return fmt.Errorf("%w: restore: %s", ErrModule, i.takeError())
	}
	return nil
}

// Host functions of the "weir" module.

func hostSetError(ctx context.Context, mod api.Module, stack []uint64) {
	i := instanceFrom(ctx)
	if i == nil {
		return
	}
	b, ok := mod.Memory().Read(uint32(stack[0]), min(uint32(stack[1]), 4096))
	if ok {
		i.errMsg = string(b)
	}
}

func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	i := instanceFrom(ctx)
	if i == nil {
		return
	}
	if b, ok := mod.Memory().Read(uint32(stack[1]), min(uint32(stack[2]), 4096)); ok {
		i.log(string(b))
	}
}

// Records splits a stored batch into its header fields and each record's
// encoding (length prefix included), decompressed: Process takes any run
// of them with the same BatchInfo (NumRecords set to the run's length),
// which is how one failing record is told from the rest of its batch.
func Records(batch []byte, d *record.Decompressor) (BatchInfo, [][]byte, error) {
	info, body, err := batchBody(batch, d, nil)
	if err != nil {
		return info, nil, err
	}
	if aliases(body, batch) {
		body = bytes.Clone(body) // the records outlive the batch
	}
	recs, err := splitRecords(body, info.NumRecords)
	return info, recs, err
}

// splitRecords cuts a records section into each record's encoding, length
// prefix included.
func splitRecords(body []byte, n int32) ([][]byte, error) {
	recs := make([][]byte, 0, n)
	for k := int32(0); k < n; k++ {
		l, m := binary.Varint(body)
		if m <= 0 || l < 0 || l > int64(len(body)-m) {
			return nil, fmt.Errorf("%w: record %d length", record.ErrCorrupt, k)
		}
		recs = append(recs, body[:m+int(l)])
		body = body[m+int(l):]
	}
	return recs, nil
}

// recordFields reads a record encoding's attributes, timestamp and offset
// deltas, and returns what follows them (key, value, headers).
func recordFields(rec []byte) (attrs byte, tsDelta, offDelta int64, rest []byte, ok bool) {
	_, n := binary.Varint(rec)
	if n <= 0 || len(rec) < n+1 {
		return 0, 0, 0, nil, false
	}
	attrs, rec = rec[n], rec[n+1:]
	if tsDelta, rec, ok = varint(rec); !ok {
		return 0, 0, 0, nil, false
	}
	if offDelta, rec, ok = varint(rec); !ok {
		return 0, 0, 0, nil, false
	}
	return attrs, tsDelta, offDelta, rec, true
}

// SourceOffset is the offset of a record encoding (as Records returns)
// in a batch with the given fields, or -1 if it cannot be read.
func SourceOffset(info BatchInfo, rec []byte) int64 {
	_, _, d, _, ok := recordFields(rec)
	if !ok {
		return -1
	}
	return info.BaseOffset + d
}
