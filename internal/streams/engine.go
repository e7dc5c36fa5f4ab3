package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/hub"
	"github.com/weir-dev/weir/internal/transform"
)

// Config wires an Engine.
type Config struct {
	NodeID int32
	// Client reaches the cluster (the local Kafka listener as a seed).
	Client []kgo.Opt
	// Runtime runs the modules.
	Runtime *transform.Runtime
	Source  Source
	Logger  *slog.Logger
	// Interval is how often the engine re-reads the catalog, follows
	// leadership and reports status; 0 means 2 s.
	Interval time.Duration
}

// Engine runs this node's share of the deployed transforms.
type Engine struct {
	cfg     Config
	hub     *hub.Client
	logger  *slog.Logger
	mu      sync.Mutex
	modules map[string]*transform.Module // by digest
	runners map[runnerKey]*runner
	views   map[string]*viewRunner
	wg      sync.WaitGroup
}

type runnerKey struct {
	name      string
	partition int32
}

// New makes an engine; Run starts it.
func New(cfg Config) (*Engine, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Engine{cfg: cfg, logger: cfg.Logger.With("component", "transforms"),
		modules: map[string]*transform.Module{}, runners: map[runnerKey]*runner{}, views: map[string]*viewRunner{}}, nil
}

// Run reconciles until ctx ends, then stops every runner.
func (e *Engine) Run(ctx context.Context) {
	h, err := hub.New(append([]kgo.Opt{kgo.ProducerLinger(0)}, e.cfg.Client...)...)
	if err != nil {
		e.logger.Error("transforms cannot reach the cluster; none will run", "err", err)
		return
	}
	e.hub = h
	defer e.hub.Close()
	defer e.stopAll()
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		if err := e.reconcile(ctx); err != nil && ctx.Err() == nil {
			e.logger.Debug("reconcile", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Engine) stopAll() {
	for name := range e.views {
		e.cfg.Source.RemoveView(name)
		delete(e.views, name)
	}
	e.mu.Lock()
	for k, r := range e.runners {
		r.stop()
		delete(e.runners, k)
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// reconcile starts a runner for every (transform, led input partition)
// that has none, stops runners no longer wanted, and has each report.
func (e *Engine) reconcile(ctx context.Context) error {
	if err := e.reconcileViews(ctx); err != nil {
		return err
	}
	defs, err := e.hub.Definitions(ctx)
	if err != nil {
		return err
	}
	want := map[runnerKey]hub.Definition{}
	for _, d := range defs {
		if d.Paused {
			continue
		}
		for _, p := range e.cfg.Source.Led(d.Input) {
			want[runnerKey{d.Name, p}] = d
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, r := range e.runners {
		d, ok := want[k]
		// A runner stopped by its error policy stays (failed, reporting
		// so) until the transform is deployed again or resumed; one that
		// ended otherwise (leadership moved) goes, and comes back if the
		// partition is led here again.
		if !ok || d.Digest != r.def.Digest || !sameDefinition(d, r.def) || (r.done() && !r.failed()) {
			r.stop()
			delete(e.runners, k)
		}
	}
	for _, d := range defs {
		if !d.Paused {
			continue
		}
		for _, p := range e.cfg.Source.Led(d.Input) {
			e.report(ctx, hub.Status{Transform: d.Name, Partition: p, Node: e.cfg.NodeID, State: "paused", Updated: time.Now()})
		}
	}
	for k, d := range want {
		if r, ok := e.runners[k]; ok {
			r.report(ctx)
			continue
		}
		m, err := e.module(ctx, d)
		if err != nil {
			e.report(ctx, hub.Status{Transform: d.Name, Partition: k.partition, Node: e.cfg.NodeID, State: "failed",
				LastError: err.Error(), Updated: time.Now()})
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		r := newRunner(e, d, k.partition, m, cancel)
		e.runners[k] = r
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			r.run(rctx)
		}()
	}
	return nil
}

func sameDefinition(a, b hub.Definition) bool {
	if a.Module != b.Module || a.Input != b.Input || a.OnError != b.OnError || a.DeadLetter != b.DeadLetter ||
		a.Revision != b.Revision || !a.Created.Equal(b.Created) || len(a.Outputs) != len(b.Outputs) || len(a.Params) != len(b.Params) {
		return false
	}
	for i := range a.Outputs {
		if a.Outputs[i] != b.Outputs[i] {
			return false
		}
	}
	for k, v := range a.Params {
		if b.Params[k] != v {
			return false
		}
	}
	return true
}

// module returns the compiled module of a definition, fetching it from the
// catalog the first time.
func (e *Engine) module(ctx context.Context, d hub.Definition) (*transform.Module, error) {
	if m, ok := e.modules[d.Digest]; ok {
		return m, nil
	}
	info, wasm, err := e.hub.Module(ctx, d.Module)
	if err != nil {
		return nil, err
	}
	if info.Digest != d.Digest || transform.Digest(wasm) != d.Digest {
		return nil, fmt.Errorf("module %s has digest %.12s, the transform was deployed with %.12s", d.Module, info.Digest, d.Digest)
	}
	m, err := e.cfg.Runtime.Compile(ctx, wasm)
	if err != nil {
		return nil, err
	}
	e.modules[d.Digest] = m
	return m, nil
}

// report writes a status record.
func (e *Engine) report(ctx context.Context, s hub.Status) {
	if err := e.hub.PutStatus(ctx, s); err != nil && !errors.Is(err, context.Canceled) {
		e.logger.Debug("transform status", "transform", s.Transform, "err", err)
	}
}
