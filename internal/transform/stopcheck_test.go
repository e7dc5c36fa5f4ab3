package transform

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tetratelabs/wazero"
)

// wasmModule assembles a module from sections (id, body).
func wasmModule(sections ...[]byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		b = append(b, s[0])
		b = binary.AppendUvarint(b, uint64(len(s)-1))
		b = append(b, s[1:]...)
	}
	return b
}

// vec encodes a vector of already-encoded elements.
func vec(elems ...[]byte) []byte {
	b := binary.AppendUvarint(nil, uint64(len(elems)))
	for _, e := range elems {
		b = append(b, e...)
	}
	return b
}

func sec(id byte, body []byte) []byte { return append([]byte{id}, body...) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// testModule imports env.started (called first by the spinning exports)
// and, if withGlobal, a global genv.g. Its exports:
//   - spin, run, loopcall never return: a loop; a function calling itself
//     twice, 60 deep (2^60 calls, no loop); a loop calling a function.
//   - answer calls through a table (an element segment), get reads a
//     global the start function set: they check that the function
//     indices moved everywhere they are used.
//
// The name section names function 7 "answer_impl".
func testModule(withGlobal bool) []byte {
	name := func(s string) []byte { return appendName(nil, s) }
	types := sec(1, vec([]byte{0x60, 0, 0}, []byte{0x60, 1, 0x7f, 0}, []byte{0x60, 0, 1, 0x7f}))
	imports := [][]byte{cat(name("env"), name("started"), []byte{0x00, 0})}
	g := byte(0)
	if withGlobal {
		imports = append(imports, cat(name("genv"), name("g"), []byte{0x03, 0x7f, 0x00}))
		g = 1
	}
	funcs := sec(3, vec([]byte{0}, []byte{0}, []byte{1}, []byte{0}, []byte{0}, []byte{2}, []byte{2}, []byte{0}, []byte{2}))
	table := sec(4, vec([]byte{0x70, 0x00, 1}))
	globals := sec(6, vec([]byte{0x7f, 0x01, 0x41, 0x00, 0x0b}))
	exports := sec(7, vec(cat(name("spin"), []byte{0, 1}), cat(name("run"), []byte{0, 2}), cat(name("loopcall"), []byte{0, 5}),
		cat(name("answer"), []byte{0, 7}), cat(name("get"), []byte{0, 9})))
	start := sec(8, []byte{8})
	elems := sec(9, vec([]byte{0, 0x41, 0, 0x0b, 1, 6}))
	body := func(code ...byte) []byte { return cat(binary.AppendUvarint(nil, uint64(len(code)+1)), []byte{0}, code) }
	code := sec(10, vec(
		body(0x10, 0, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b), // 1 spin
		body(0x10, 0, 0x41, 60, 0x10, 3, 0x0b),            // 2 run
		body(0x20, 0, 0x04, 0x40, // 3 recurse
			0x20, 0, 0x41, 1, 0x6b, 0x10, 3,
			0x20, 0, 0x41, 1, 0x6b, 0x10, 3,
			0x0b, 0x0b),
		body(0x0b), // 4 leaf
		body(0x10, 0, 0x03, 0x40, 0x10, 4, 0x0c, 0x00, 0x0b, 0x0b), // 5 loopcall
		body(0x41, 42, 0x0b),            // 6 fortytwo
		body(0x41, 0, 0x11, 2, 0, 0x0b), // 7 answer: call_indirect
		body(0x41, 7, 0x24, g, 0x0b),    // 8 start: g = 7
		body(0x23, g, 0x0b),             // 9 get
	))
	names := sec(0, cat(name("name"), []byte{1}, func() []byte {
		sub := vec(cat([]byte{7}, name("answer_impl")))
		return cat(binary.AppendUvarint(nil, uint64(len(sub))), sub)
	}()))
	return wasmModule(types, sec(2, vec(imports...)), funcs, table, globals, exports, start, elems, code, names)
}

// sandboxHost instantiates weir_sandbox.check answering with stop.
func sandboxHost(t *testing.T, rt wazero.Runtime, stop *atomic.Bool) {
	_, err := rt.NewHostModuleBuilder(sandboxModule).NewFunctionBuilder().
		WithFunc(func() uint32 {
			if stop.Load() {
				return 1
			}
			return 0
		}).Export(sandboxCheck).Instantiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
}

func TestStopChecks(t *testing.T) {
	for _, withGlobal := range []bool{false, true} {
		ctx := context.Background()
		rt := wazero.NewRuntime(ctx)
		defer rt.Close(ctx)
		var stop atomic.Bool
		sandboxHost(t, rt, &stop)
		started := make(chan struct{}, 1)
		_, err := rt.NewHostModuleBuilder("env").NewFunctionBuilder().
			WithFunc(func() { started <- struct{}{} }).Export("started").Instantiate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		genv := wasmModule(sec(6, vec([]byte{0x7f, 0x00, 0x41, 0x05, 0x0b})), sec(7, vec(cat(appendName(nil, "g"), []byte{0x03, 0}))))
		if _, err := rt.InstantiateWithConfig(ctx, genv, wazero.NewModuleConfig().WithName("genv")); err != nil {
			t.Fatal(err)
		}
		out, err := addStopChecks(testModule(withGlobal))
		if err != nil {
			t.Fatal(err)
		}
		cm, err := rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("the rewritten module does not compile: %v", err)
		}
		if got := cm.ExportedFunctions()["answer"].Name(); got != "answer_impl" {
			t.Errorf("the name section names answer %q", got)
		}
		mod, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("spin"))
		if err != nil {
			t.Fatalf("the rewritten module does not start: %v", err)
		}
		for fn, want := range map[string]uint64{"answer": 42, "get": 7} {
			if res, err := mod.ExportedFunction(fn).Call(ctx); err != nil || res[0] != want {
				t.Errorf("%s() = %v, %v; want %d", fn, res, err, want)
			}
		}
		// One after the other on the same instance: a trap must not
		// leave the checks disarmed for the next call.
		for _, fn := range []string{"spin", "run", "loopcall", "spin"} {
			stop.Store(false)
			done := make(chan error, 1)
			go func() {
				_, err := mod.ExportedFunction(fn).Call(ctx)
				done <- err
			}()
			<-started // past its entry check: only the checks inside stop it
			// The world can be stopped while the module spins (a
			// collection needs that), because the checks call out to
			// Go now and then.
			runtime.GC()
			stop.Store(true)
			if err := <-done; err == nil {
				t.Fatalf("%s returned without an error", fn)
			}
		}
	}
}

func TestStopChecksRefuseMalformed(t *testing.T) {
	good := testModule(true)
	for name, b := range map[string][]byte{
		"empty":       nil,
		"not wasm":    []byte("hello world"),
		"cut":         good[:len(good)-3],
		"bad opcode":  wasmModule([]byte{1, 1, 0x60, 0, 0}, []byte{3, 1, 0}, []byte{10, 1, 3, 0, 0xff, 0x0b}),
		"bad element": wasmModule(sec(9, vec([]byte{9}))),
		"reserved":    wasmModule(sec(2, vec(cat(appendName(nil, sandboxModule), appendName(nil, "x"), []byte{0, 0})))),
		"section len": append(wasmModule(), 1, 0x80),
	} {
		if _, err := addStopChecks(b); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, errWasm) && !errors.Is(err, errUnknownOp) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzAddStopChecks feeds arbitrary bytes to the module rewriter, which
// reads what users publish: it must never panic, and what it returns must
// itself be a module it can read.
func FuzzAddStopChecks(f *testing.F) {
	f.Add(testModule(false))
	f.Add(testModule(true))
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := addStopChecks(b)
		if err != nil {
			return
		}
		// What comes out reads back (its import is the reserved one).
		if _, err := addStopChecks(out); err == nil || !strings.Contains(err.Error(), "reserves") {
			t.Fatalf("the rewritten module does not read back: %v", err)
		}
	})
}
