package transform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A call that runs past its time budget has to be stopped from outside,
// since the module never returns on its own. wazero can compile code with
// termination checks, but they call out to Go at every loop head, and Go's
// WebAssembly puts a loop in every function, so a Go module runs 4-5x
// slower with them. Instead, addStopChecks rewrites a module before it is
// compiled. It adds a mutable i32 global $fuel and an imported function
// $check (sandboxModule.sandboxCheck, () -> i32), and at the start of every
// function and every loop head inserts
//
//	global.get $fuel  i32.const 1  i32.sub  global.set $fuel
//	global.get $fuel  i32.const 0  i32.le_s
//	if
//	  i32.const fuelPerCheck  global.set $fuel
//	  call $check  if unreachable end
//	end
//
// which costs a few instructions on the way through. $check returns
// non-zero once the call's budget has run out, and the module traps. The
// call out to Go matters for another reason too: machine code that never
// calls out cannot be preempted, and a Go runtime that wants to stop the
// world for a collection would wait for it (every goroutine of the broker
// with it) for as long as the loop runs.
//
// The import takes the function index after the last imported function,
// so every index of a function defined in the module moves up by one: in
// calls, ref.func, exports, the start function, element segments and the
// name section.

const (
	sandboxModule = "weir_sandbox"
	sandboxCheck  = "check"
	// fuelPerCheck is how many checks pass between two calls out to Go.
	fuelPerCheck = 4096
)

var (
	errWasm = errors.New("malformed WebAssembly")
	// errUnknownOp marks an instruction the rewriter does not know, so
	// cannot step over.
	errUnknownOp = errors.New("unsupported instruction")
)

// Section ids of the binary format.
const (
	secCustom  = 0
	secType    = 1
	secImport  = 2
	secGlobal  = 6
	secExport  = 7
	secStart   = 8
	secElement = 9
	secCode    = 10
	secDataCnt = 12
	secTag     = 13
)

// sectionOrder is where each known section goes in a module (ids are not
// in order: datacount sits before code, tag between memory and global).
func sectionOrder(id byte) int {
	switch id {
	case secTag:
		return 55 // after memory (5), before global (6)
	case secDataCnt:
		return 95 // after element (9), before code (10)
	}
	return int(id) * 10
}

type section struct {
	id   byte
	body []byte
}

// addStopChecks returns the module rewritten as described above.
func addStopChecks(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" || binary.LittleEndian.Uint32(wasm[4:8]) != 1 {
		return nil, fmt.Errorf("%w: not a WebAssembly 1.0 binary", errWasm)
	}
	var secs []section
	r := reader{b: wasm[8:]}
	for !r.done() {
		id := r.byte()
		n := r.u32()
		body := r.bytes(int(n))
		if r.err != nil {
			return nil, fmt.Errorf("%w: section %d: %v", errWasm, id, r.err)
		}
		secs = append(secs, section{id, body})
	}
	// What the new entries' indices depend on.
	var types, importedFuncs, importedGlobals, definedGlobals uint32
	for _, s := range secs {
		r := reader{b: s.body}
		switch s.id {
		case secType:
			types = r.u32()
		case secImport:
			var err error
			if importedFuncs, importedGlobals, err = countImports(s.body); err != nil {
				return nil, err
			}
		case secGlobal:
			definedGlobals = r.u32()
		}
		if r.err != nil {
			return nil, fmt.Errorf("%w: section %d: %v", errWasm, s.id, r.err)
		}
	}
	rw := rewriter{firstMoved: importedFuncs, check: stopCheck(importedFuncs, importedGlobals+definedGlobals)}
	newType := []byte{0x60, 0x00, 0x01, 0x7f} // () -> i32
	newImport := appendName(appendName(nil, sandboxModule), sandboxCheck)
	newImport = binary.AppendUvarint(append(newImport, 0x00), uint64(types))
	newGlobal := append([]byte{0x7f, 0x01, 0x41}, appendSLEB(nil, fuelPerCheck)...)
	newGlobal = append(newGlobal, 0x0b)
	added := map[byte][]byte{secType: newType, secImport: newImport, secGlobal: newGlobal}

	out := make([]byte, 0, len(wasm)+len(wasm)/8+64)
	out = append(out, wasm[:8]...)
	put := func(id byte, body []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	// A section the module lacks is made where it belongs: before the
	// first known section that comes after it.
	have := map[byte]bool{}
	for _, s := range secs {
		have[s.id] = true
	}
	missing := func(before byte) {
		for _, id := range []byte{secType, secImport, secGlobal} {
			if !have[id] && sectionOrder(id) < sectionOrder(before) {
				have[id] = true
				put(id, append(binary.AppendUvarint(nil, 1), added[id]...))
			}
		}
	}
	for _, s := range secs {
		if s.id != secCustom {
			missing(s.id)
		}
		var body []byte
		var err error
		switch s.id {
		case secType, secImport:
			body, err = appendToVec(s.body, added[s.id])
		case secGlobal:
			body, err = rw.globals(s.body, newGlobal)
		case secExport:
			body, err = rw.exports(s.body)
		case secStart:
			r := reader{b: s.body}
			body = binary.AppendUvarint(nil, uint64(rw.moved(r.u32())))
			err = r.end()
		case secElement:
			body, err = rw.elements(s.body)
		case secCode:
			body, err = rw.code(s.body)
		case secCustom:
			body = rw.custom(s.body)
		default:
			body = s.body
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
		put(s.id, body)
	}
	missing(0xff)
	return out, nil
}

// stopCheck encodes the check described at the top of the file. The fuel
// is refilled before $check is called, so that it never stays at zero,
// and compared with <= 0 in case a module ever sets it below.
func stopCheck(check, fuel uint32) []byte {
	get := binary.AppendUvarint([]byte{0x23}, uint64(fuel))
	set := binary.AppendUvarint([]byte{0x24}, uint64(fuel))
	b := append([]byte{}, get...)
	b = append(b, 0x41, 0x01, 0x6b) // i32.const 1, i32.sub
	b = append(b, set...)
	b = append(b, get...)
	b = append(b, 0x41, 0x00, 0x4c, 0x04, 0x40, 0x41) // i32.const 0, i32.le_s, if, i32.const
	b = appendSLEB(b, fuelPerCheck)
	b = append(b, set...)
	b = binary.AppendUvarint(append(b, 0x10), uint64(check)) // call
	return append(b, 0x04, 0x40, 0x00, 0x0b, 0x0b)           // if unreachable end, end
}

// appendToVec adds one encoded element to a section that is a vector.
func appendToVec(body, elem []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", errWasm, r.err)
	}
	out := binary.AppendUvarint(nil, uint64(n)+1)
	out = append(out, r.b...)
	return append(out, elem...), nil
}

func appendName(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// countImports counts the imported functions and globals, and refuses a
// module that imports from the module name the rewrite uses.
func countImports(body []byte) (funcs, globals uint32, err error) {
	r := reader{b: body}
	n := r.u32()
	for k := uint32(0); k < n && r.err == nil; k++ {
		if string(r.name()) == sandboxModule {
			return 0, 0, fmt.Errorf("%w: it imports from %q, a module name Weir reserves", errWasm, sandboxModule)
		}
		r.name()
		switch kind := r.byte(); kind {
		case 0x00: // function: type index
			r.u32()
			funcs++
		case 0x01: // table: reference type, limits
			r.byte()
			r.limits()
		case 0x02: // memory: limits
			r.limits()
		case 0x03: // global: value type, mutability
			r.valType()
			r.byte()
			globals++
		case 0x04: // tag: attribute, type index
			r.byte()
			r.u32()
		default:
			return 0, 0, fmt.Errorf("%w: import kind %d", errWasm, kind)
		}
	}
	if err := r.end(); err != nil {
		return 0, 0, fmt.Errorf("import section: %w", err)
	}
	return funcs, globals, nil
}

// rewriter moves function indices up by one from firstMoved and inserts
// check into function bodies.
type rewriter struct {
	firstMoved uint32
	check      []byte
}

func (rw *rewriter) moved(idx uint32) uint32 {
	if idx >= rw.firstMoved {
		return idx + 1
	}
	return idx
}

// globals rewrites the global section (an initializer may be a ref.func)
// and appends g.
func (rw *rewriter) globals(body, g []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(nil, uint64(n)+1)
	for k := uint32(0); k < n && r.err == nil; k++ {
		start := len(body) - len(r.b)
		r.valType()
		r.byte()
		out = append(out, body[start:len(body)-len(r.b)]...)
		out = rw.expr(out, &r)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return append(out, g...), nil
}

func (rw *rewriter) exports(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(nil, uint64(n))
	for k := uint32(0); k < n && r.err == nil; k++ {
		out = appendName(out, string(r.name()))
		kind := r.byte()
		idx := r.u32()
		if kind == 0x00 {
			idx = rw.moved(idx)
		}
		out = binary.AppendUvarint(append(out, kind), uint64(idx))
	}
	return out, r.end()
}

// elements rewrites element segments, in any of their eight forms.
func (rw *rewriter) elements(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(nil, uint64(n))
	for k := uint32(0); k < n && r.err == nil; k++ {
		flags := r.u32()
		if flags > 7 {
			return nil, fmt.Errorf("%w: element segment flags %d", errWasm, flags)
		}
		out = binary.AppendUvarint(out, uint64(flags))
		if flags&3 == 2 { // active with a table index
			out = binary.AppendUvarint(out, uint64(r.u32()))
		}
		if flags&1 == 0 { // active: an offset
			out = rw.expr(out, &r)
		}
		if flags&3 != 0 { // element kind or reference type
			out = append(out, r.byte())
		}
		count := r.u32()
		out = binary.AppendUvarint(out, uint64(count))
		for e := uint32(0); e < count && r.err == nil; e++ {
			if flags&4 == 0 {
				out = binary.AppendUvarint(out, uint64(rw.moved(r.u32())))
			} else {
				out = rw.expr(out, &r)
			}
		}
	}
	return out, r.end()
}

// expr copies a constant expression up to its end.
func (rw *rewriter) expr(dst []byte, r *reader) []byte {
	for r.err == nil {
		if len(r.b) > 0 && r.b[0] == 0x0b {
			r.byte()
			return append(dst, 0x0b)
		}
		dst = rw.instruction(dst, r)
	}
	return dst
}

// instruction copies one instruction, with a moved function index if it
// has one.
func (rw *rewriter) instruction(dst []byte, r *reader) []byte {
	if len(r.b) > 0 {
		switch op := r.b[0]; op {
		case 0x10, 0x12, 0xd2: // call, return_call, ref.func
			r.byte()
			idx := r.u32()
			return binary.AppendUvarint(append(dst, op), uint64(rw.moved(idx)))
		}
	}
	from := r.b
	r.instruction()
	return append(dst, from[:len(from)-len(r.b)]...)
}

// code rewrites the code section: function indices move, and every body
// gets the check first and after every loop's block type.
func (rw *rewriter) code(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	if r.err != nil {
		return nil, fmt.Errorf("%w: function count: %v", errWasm, r.err)
	}
	out := make([]byte, 0, len(body)+len(body)/8)
	out = binary.AppendUvarint(out, uint64(n))
	var fn []byte
	for k := uint32(0); k < n; k++ {
		size := r.u32()
		code := r.bytes(int(size))
		if r.err != nil {
			return nil, fmt.Errorf("%w: function body %d: %v", errWasm, k, r.err)
		}
		var err error
		if fn, err = rw.function(fn[:0], code); err != nil {
			return nil, fmt.Errorf("function body %d: %w", k, err)
		}
		out = binary.AppendUvarint(out, uint64(len(fn)))
		out = append(out, fn...)
	}
	if !r.done() {
		return nil, fmt.Errorf("%w: %d bytes after the function bodies", errWasm, len(r.b))
	}
	return out, nil
}

func (rw *rewriter) function(dst, code []byte) ([]byte, error) {
	r := reader{b: code}
	groups := r.u32()
	for k := uint32(0); k < groups && r.err == nil; k++ {
		r.u32()
		r.valType()
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: locals: %v", errWasm, r.err)
	}
	dst = append(dst, code[:len(code)-len(r.b)]...)
	dst = append(dst, rw.check...)
	for !r.done() {
		loop := r.b[0] == 0x03
		at := len(code) - len(r.b)
		dst = rw.instruction(dst, &r)
		if r.err != nil {
			return nil, fmt.Errorf("at byte %d: %w", at, r.err)
		}
		if loop {
			dst = append(dst, rw.check...)
		}
	}
	return dst, nil
}

// custom rewrites the function indices of a name section's function and
// local names; other custom sections are kept as they are, and so is a
// name section that does not read as one.
func (rw *rewriter) custom(body []byte) []byte {
	r := reader{b: body}
	if string(r.name()) != "name" || r.err != nil {
		return body
	}
	out := append([]byte(nil), body[:len(body)-len(r.b)]...)
	for !r.done() {
		id := r.byte()
		sub := r.name()
		if r.err != nil {
			return body
		}
		if id == 1 || id == 2 {
			s := reader{b: sub}
			n := s.u32()
			var nb []byte
			nb = binary.AppendUvarint(nb, uint64(n))
			for k := uint32(0); k < n && s.err == nil; k++ {
				nb = binary.AppendUvarint(nb, uint64(rw.moved(s.u32())))
				from := s.b
				if id == 1 {
					s.name()
				} else {
					locals := s.u32()
					for l := uint32(0); l < locals && s.err == nil; l++ {
						s.u32()
						s.name()
					}
				}
				nb = append(nb, from[:len(from)-len(s.b)]...)
			}
			if s.end() != nil {
				return body
			}
			sub = nb
		}
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(sub)))
		out = append(out, sub...)
	}
	return out
}

// reader steps through WebAssembly binary encodings with a sticky error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) done() bool { return len(r.b) == 0 || r.err != nil }

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail(errors.New("unexpected end"))
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.fail(errors.New("length past the end"))
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

// leb skips a LEB128 number of at most maxBytes bytes and returns its low
// 64 bits (unsigned reading).
func (r *reader) leb(maxBytes int) uint64 {
	var v uint64
	for k := 0; k < maxBytes; k++ {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if k < 10 {
			v |= uint64(c&0x7f) << (7 * k)
		}
		if c < 0x80 {
			return v
		}
	}
	r.fail(errors.New("LEB128 number too long"))
	return 0
}

func (r *reader) u32() uint32 {
	v := r.leb(5)
	if v > math.MaxUint32 {
		r.fail(errors.New("u32 out of range"))
	}
	return uint32(v)
}

func (r *reader) name() []byte { return r.bytes(int(r.u32())) }

func (r *reader) limits() {
	flags := r.byte()
	r.leb(10)
	if flags&1 != 0 {
		r.leb(10)
	}
}

// valType steps over a value type: one byte for numbers, vectors and the
// two reference types wazero runs.
func (r *reader) valType() {
	switch c := r.byte(); c {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f, 0x69:
	default:
		if r.err == nil {
			r.fail(fmt.Errorf("%w: value type 0x%02x", errUnknownOp, c))
		}
	}
}

// blockType steps over a block type: empty, a value type, or a type index
// (a signed LEB128 of up to 33 bits).
func (r *reader) blockType() {
	if len(r.b) > 0 {
		switch r.b[0] {
		case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f, 0x69:
			r.b = r.b[1:]
			return
		}
	}
	r.leb(5)
}

func (r *reader) memarg() {
	align := r.u32()
	if align&0x40 != 0 { // multiple memories: a memory index follows
		r.u32()
	}
	r.leb(10)
}

// instruction steps over one instruction and its immediates.
func (r *reader) instruction() {
	op := r.byte()
	switch {
	case op == 0x00, op == 0x01, op == 0x05, op == 0x0a, op == 0x0b, op == 0x0f, op == 0x19,
		op == 0x1a, op == 0x1b, op == 0xd1, op >= 0x45 && op <= 0xc4:
		// no immediates
	case op >= 0x02 && op <= 0x04, op == 0x06: // block, loop, if, try
		r.blockType()
	case op == 0x07, op == 0x08, op == 0x09, op == 0x0c, op == 0x0d, op == 0x10, op == 0x12, op == 0x18,
		op >= 0x20 && op <= 0x26, op == 0xd2, op == 0x3f, op == 0x40:
		// one index: catch, throw, rethrow, br, br_if, call, return_call,
		// delegate, locals, globals, table.get/set, ref.func,
		// memory.size/grow
		r.u32()
	case op == 0x0e: // br_table
		n := r.u32()
		for k := uint32(0); k <= n && r.err == nil; k++ {
			r.u32()
		}
	case op == 0x11, op == 0x13: // call_indirect, return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1c: // select with types
		n := r.u32()
		for k := uint32(0); k < n && r.err == nil; k++ {
			r.valType()
		}
	case op == 0x1f: // try_table
		r.blockType()
		n := r.u32()
		for k := uint32(0); k < n && r.err == nil; k++ {
			if kind := r.byte(); kind < 2 { // catch, catch_ref: a tag
				r.u32()
			}
			r.u32()
		}
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.memarg()
	case op == 0x41:
		r.leb(5)
	case op == 0x42:
		r.leb(10)
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op == 0xd0: // ref.null: a heap type
		r.blockType()
	case op == 0xfc:
		r.miscInstruction()
	case op == 0xfd:
		r.vectorInstruction()
	case op == 0xfe:
		r.atomicInstruction()
	default:
		r.fail(fmt.Errorf("%w: opcode 0x%02x", errUnknownOp, op))
	}
}

func (r *reader) miscInstruction() {
	switch sub := r.u32(); {
	case sub <= 7: // saturating truncations
	case sub == 8, sub == 10, sub == 12, sub == 14: // memory.init, memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17:
		r.u32()
	default:
		r.fail(fmt.Errorf("%w: 0xfc %d", errUnknownOp, sub))
	}
}

func (r *reader) vectorInstruction() {
	switch sub := r.u32(); {
	case sub <= 0x0b, sub == 0x5c, sub == 0x5d: // loads and stores
		r.memarg()
	case sub == 0x0c, sub == 0x0d: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 0x15 && sub <= 0x22: // lane extracts and replaces
		r.byte()
	case sub >= 0x54 && sub <= 0x5b: // lane loads and stores
		r.memarg()
		r.byte()
	case sub <= 0x113:
		// the rest take no immediates
	default:
		r.fail(fmt.Errorf("%w: 0xfd %d", errUnknownOp, sub))
	}
}

func (r *reader) atomicInstruction() {
	switch sub := r.u32(); {
	case sub == 0x03: // atomic.fence
		r.byte()
	case sub <= 0x02, sub >= 0x10 && sub <= 0x4e:
		r.memarg()
	default:
		r.fail(fmt.Errorf("%w: 0xfe %d", errUnknownOp, sub))
	}
}

// end reports an error if anything is left unread or went wrong.
func (r *reader) end() error {
	if r.err != nil {
		return fmt.Errorf("%w: %v", errWasm, r.err)
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d bytes left over", errWasm, len(r.b))
	}
	return nil
}
