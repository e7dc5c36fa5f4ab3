// Package transform runs WebAssembly transform modules with wazero: it
// compiles and checks modules, instantiates them in a sandbox (no
// filesystem, network or real clock; a memory cap; a time budget per call)
// and drives the host ABI of docs/format/transform-abi.md, one call per
// record batch.
package transform

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Kind is what a module does with records (the SDK's registration).
type Kind int32

const (
	KindFilter    Kind = 1
	KindMap       Kind = 2
	KindFilterMap Kind = 3
	KindFlatMap   Kind = 4
	KindAggregate Kind = 5
)

func (k Kind) String() string {
	switch k {
	case KindFilter:
		return "filter"
	case KindMap:
		return "map"
	case KindFilterMap:
		return "filter-map"
	case KindFlatMap:
		return "flat-map"
	case KindAggregate:
		return "aggregate"
	}
	return fmt.Sprintf("unknown(%d)", int32(k))
}

// Errors of the runtime.
var (
	// ErrInvalidModule: the bytes are not a WebAssembly module Weir can
	// run (malformed, or without the exports of the ABI).
	ErrInvalidModule = errors.New("invalid transform module")
	// ErrTrap: the module trapped (a panic, an out-of-bounds access, its
	// memory cap) or exited; the instance is unusable.
	ErrTrap = errors.New("transform module trapped")
	// ErrBudget: a call ran past the time budget and was stopped; the
	// instance is unusable.
	ErrBudget = errors.New("transform module ran past its time budget")
	// ErrModule: the module reported an error (its message follows).
	ErrModule = errors.New("transform module failed")
)

// Options configure a Runtime.
type Options struct {
	// CacheDir keeps compiled code on disk, so a restart does not
	// recompile; "" keeps it in memory only.
	CacheDir string
	// MemoryLimit caps each instance's linear memory, in bytes (rounded
	// down to 64 KiB pages); 0 means DefaultMemoryLimit.
	MemoryLimit int64
	// Budget is the time a call (one batch) may take before the instance
	// is stopped; 0 means DefaultBudget.
	Budget time.Duration
	// Unbounded turns the time budget off for trusted modules: a module
	// that never returns then holds its goroutine and a CPU for good.
	Unbounded bool
	Logger    *slog.Logger
}

const (
	DefaultMemoryLimit = 128 << 20
	DefaultBudget      = 5 * time.Second
)

// Runtime compiles and runs modules. It is safe for concurrent use; each
// Instance is not.
type Runtime struct {
	rt     wazero.Runtime
	cache  wazero.CompilationCache
	budget time.Duration // 0: unbounded
	logger *slog.Logger
}

// NewRuntime makes a runtime with WASI preview 1 (no preopened
// directories, no sockets, deterministic clocks and randomness) and the
// host module "weir".
func NewRuntime(ctx context.Context, o Options) (*Runtime, error) {
	if o.MemoryLimit <= 0 {
		o.MemoryLimit = DefaultMemoryLimit
	}
	if o.Budget <= 0 {
		o.Budget = DefaultBudget
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var cache wazero.CompilationCache
	if o.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(o.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("transform cache %s: %w", o.CacheDir, err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	pages := uint32(min(o.MemoryLimit/65536, 65536))
	cfg := wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		WithMemoryLimitPages(max(pages, 1))
	r := &Runtime{rt: wazero.NewRuntimeWithConfig(ctx, cfg), cache: cache, budget: o.Budget, logger: o.Logger}
	if o.Unbounded {
		r.budget = 0
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.rt); err != nil {
		r.rt.Close(ctx)
		return nil, err
	}
	_, err := r.rt.NewHostModuleBuilder(sandboxModule).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostSandboxCheck), nil, []api.ValueType{api.ValueTypeI32}).Export(sandboxCheck).
		Instantiate(ctx)
	if err != nil {
		r.rt.Close(ctx)
		return nil, err
	}
	if err := instantiateRedpandaHost(ctx, r.rt); err != nil {
		r.rt.Close(ctx)
		return nil, err
	}
	_, err = r.rt.NewHostModuleBuilder("weir").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostSetError), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, nil).Export("set_error").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostLog), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).Export("log").
		Instantiate(ctx)
	if err != nil {
		r.rt.Close(ctx)
		return nil, err
	}
	return r, nil
}

// Close releases the runtime and every instance.
func (r *Runtime) Close(ctx context.Context) error {
	err := r.rt.Close(ctx)
	if cerr := r.cache.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

// Module is a compiled, checked module.
type Module struct {
	r      *Runtime
	cm     wazero.CompiledModule
	digest string
	// redpanda: built with Redpanda's Data Transforms SDK (redpanda.go).
	redpanda bool
}

// Digest is the module's SHA-256, hex.
func (m *Module) Digest() string { return m.digest }

// Digest returns the SHA-256 of module bytes, hex, as Module.Digest does.
func Digest(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

// The exports a module must have, with their signatures.
var requiredExports = []struct {
	name    string
	params  []api.ValueType
	results []api.ValueType
}{
	{"weir_abi_v1", nil, nil},
	{"weir_alloc", []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
	{"weir_init", []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
	{"weir_process", []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}},
}

// Compile compiles and checks a module. Code compiled before (same bytes)
// comes from the cache.
func (r *Runtime) Compile(ctx context.Context, wasm []byte) (*Module, error) {
	code, err := addStopChecks(wasm)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	cm, err := r.rt.CompileModule(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	m := &Module{r: r, cm: cm, digest: Digest(wasm), redpanda: importsRedpanda(cm)}
	check := checkExports
	if m.redpanda {
		check = checkRedpanda
	}
	if err := check(cm); err != nil {
		cm.Close(ctx)
		return nil, err
	}
	return m, nil
}

func checkExports(cm wazero.CompiledModule) error {
	exports := cm.ExportedFunctions()
	if _, ok := cm.ExportedMemories()["memory"]; !ok {
		return fmt.Errorf("%w: it exports no memory named \"memory\"", ErrInvalidModule)
	}
	for _, want := range requiredExports {
		fn, ok := exports[want.name]
		if !ok {
			if want.name == "weir_abi_v1" {
				return fmt.Errorf("%w: it does not export weir_abi_v1; build it with the Weir SDK (see docs/format/transform-abi.md)", ErrInvalidModule)
			}
			return fmt.Errorf("%w: it does not export %s", ErrInvalidModule, want.name)
		}
		if !sameTypes(fn.ParamTypes(), want.params) || !sameTypes(fn.ResultTypes(), want.results) {
			return fmt.Errorf("%w: %s has the wrong signature", ErrInvalidModule, want.name)
		}
	}
	for _, imp := range cm.ImportedFunctions() {
		mod, name, _ := imp.Import()
		if mod != "weir" && mod != wasi_snapshot_preview1.ModuleName && mod != redpandaModule && mod != sandboxModule {
			return fmt.Errorf("%w: it imports %s.%s, which Weir does not provide", ErrInvalidModule, mod, name)
		}
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Close releases the compiled code (instances keep running).
func (m *Module) Close(ctx context.Context) error { return m.cm.Close(ctx) }
