// Package server wires a Weir node together from its configuration: it
// opens the broker (recovering the data directory), binds the Kafka and HTTP
// listeners and owns the start and stop order. Tests and Go programs embed a
// broker with New and Run.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/api"
	"github.com/weir-dev/weir/internal/broker"
	"github.com/weir-dev/weir/internal/clock"
	"github.com/weir-dev/weir/internal/cluster"
	"github.com/weir-dev/weir/internal/config"
	"github.com/weir-dev/weir/internal/kafka"
	"github.com/weir-dev/weir/internal/streams"
	"github.com/weir-dev/weir/internal/transform"
)

// Server is one running Weir node.
type Server struct {
	cfg    config.Config
	logger *slog.Logger
	broker *broker.Broker
	kafka  *kafka.Server
	kafkaL net.Listener
	httpL  net.Listener
	http   *http.Server
	ready  atomic.Bool
	// cluster is the node's controller in cluster mode.
	cluster *cluster.Controller
	// wasm runs transform modules; transforms runs this node's share of
	// the deployed ones.
	wasm       *transform.Runtime
	transforms *streams.Engine
}

// Option adjusts how New builds a server.
type Option func(*options)

type options struct {
	logger *slog.Logger
	clock  clock.Clock
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithClock sets the clock (default: the wall clock).
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// New validates cfg, recovers the data directory and binds the listeners.
// Nothing is served until Run.
func New(cfg config.Config, opts ...Option) (*Server, error) {
	o := options{logger: slog.New(slog.DiscardHandler), clock: clock.Real{}}
	for _, f := range opts {
		f(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	start := time.Now()
	s := &Server{cfg: cfg, logger: o.logger}
	var err error
	if s.kafkaL, err = net.Listen("tcp", cfg.KafkaAddr); err != nil {
		return nil, fmt.Errorf("listen for Kafka clients on %s: %w", cfg.KafkaAddr, err)
	}
	if s.httpL, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		s.kafkaL.Close()
		return nil, fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	host, port, err := advertised(cfg.AdvertisedKafkaAddr, s.kafkaL.Addr())
	if err != nil {
		s.closeListeners()
		return nil, err
	}
	bcfg := broker.Config{
		DataDir:                  cfg.DataDir,
		NodeID:                   cfg.NodeID,
		AutoCreateTopics:         cfg.AutoCreateTopics,
		DefaultPartitions:        cfg.DefaultPartitions,
		DefaultReplicationFactor: 1,
		TopicDefaults:            cfg.TopicDefaults,
		MaintenanceInterval:      cfg.MaintenanceInterval,
		SyncWorkers:              cfg.SyncWorkers,

		GroupInitialRebalanceDelay: cfg.GroupInitialRebalanceDelay,
	}
	if cfg.Clustered() {
		if s.cluster, err = s.joinCluster(cfg, host, port, o); err != nil {
			s.closeListeners()
			return nil, err
		}
		bcfg.Cluster = s.cluster
		bcfg.LeaderRebalanceAfter = cfg.LeaderRebalanceAfter
		bcfg.DefaultReplicationFactor = int16(cfg.ReplicationFactor)
	}
	b, err := broker.Open(bcfg, o.clock, o.logger)
	if err != nil {
		s.closeListeners()
		if s.cluster != nil {
			s.cluster.Close()
		}
		return nil, err
	}
	s.broker = b
	if err := s.openTransforms(cfg, o); err != nil {
		s.Close()
		return nil, err
	}
	s.kafka = kafka.New(kafka.Config{MaxRequestBytes: cfg.MaxRequestBytes, AdvertisedHost: host, AdvertisedPort: port}, b, o.clock, o.logger)
	s.http = &http.Server{Handler: api.NewHandler(s), ReadHeaderTimeout: 10 * time.Second}
	o.logger.Info("broker opened", "data_dir", cfg.DataDir, "topics", len(b.Topics()), "recovery", time.Since(start).Round(time.Microsecond))
	return s, nil
}

// joinCluster binds the Raft listener and starts this node's controller.
// It waits (up to seedWait) for the seeds to answer on a first start.
func (s *Server) joinCluster(cfg config.Config, kafkaHost string, kafkaPort int32, o options) (*cluster.Controller, error) {
	ln, err := net.Listen("tcp", cfg.RPCAddr)
	if err != nil {
		return nil, fmt.Errorf("listen for cluster peers on %s: %w", cfg.RPCAddr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), seedWait)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Config{
		NodeID: cfg.NodeID, DataDir: cfg.DataDir, Listener: ln, RPCAddr: cfg.RPCAddr, Seeds: cfg.Seeds,
		DialMap: cfg.RPCDialMap, KafkaHost: kafkaHost, KafkaPort: kafkaPort, ClusterName: cfg.ClusterName,
		TickInterval: cfg.RaftTick, HealAfter: cfg.HealAfter, Clock: o.clock, Logger: o.logger,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	o.logger.Info("cluster mode", "node", cfg.NodeID, "rpc", cfg.RPCAddr, "seeds", cfg.Seeds)
	return c, nil
}

// seedWait bounds how long a first start waits for every seed to answer.
const seedWait = 10 * time.Minute

func (s *Server) closeListeners() {
	s.kafkaL.Close()
	s.httpL.Close()
}

// advertised picks the address Metadata gives clients: the configured one,
// else the listener's, with a wildcard host replaced by loopback.
func advertised(configured string, l net.Addr) (string, int32, error) {
	addr := configured
	if addr == "" {
		addr = l.String()
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("advertised address %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", 0, fmt.Errorf("advertised port %q: %w", portStr, err)
	}
	return host, int32(port), nil
}

// KafkaAddr is the bound Kafka listener address.
func (s *Server) KafkaAddr() net.Addr { return s.kafkaL.Addr() }

// HTTPAddr is the bound HTTP listener address.
func (s *Server) HTTPAddr() net.Addr { return s.httpL.Addr() }

// Broker exposes the broker for in-process use and tests.
func (s *Server) Broker() *broker.Broker { return s.broker }

// Ready implements api.Status: serving, and in a cluster registered
// with a controller that has a leader.
func (s *Server) Ready() bool {
	return s.ready.Load() && (s.cluster == nil || s.cluster.Ready())
}

// Decommission implements api.Nodes: the node's replicas move to the
// other nodes.
func (s *Server) Decommission(ctx context.Context, node int32) error {
	if s.cluster == nil {
		return &api.Error{Code: http.StatusConflict, Message: "this node is not part of a cluster"}
	}
	if _, ok := s.cluster.Metadata().Nodes[node]; !ok {
		return &api.Error{Code: http.StatusNotFound, Message: fmt.Sprintf("node %d is not registered", node)}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.cluster.Decommission(ctx, node); err != nil {
		if errors.Is(err, cluster.ErrTimeout) {
			return &api.Error{Code: http.StatusServiceUnavailable, Message: err.Error()}
		}
		return err
	}
	return nil
}

// Healthy implements api.Status: unhealthy once any partition log has
// stopped after an I/O error.
func (s *Server) Healthy() (bool, string) {
	if f := s.broker.Failures(); len(f) > 0 {
		return false, strings.Join(f, "; ")
	}
	return true, ""
}

// openTransforms makes the module runtime (compiled code cached in the
// data directory) and the engine that runs deployed transforms.
func (s *Server) openTransforms(cfg config.Config, o options) error {
	rt, err := transform.NewRuntime(context.Background(), transform.Options{
		CacheDir:    transformCacheDir(cfg.DataDir),
		MemoryLimit: int64(cfg.TransformMemoryMB) << 20,
		Budget:      cfg.TransformBudget,
		Unbounded:   cfg.TransformBudget == 0,
		Logger:      o.logger,
	})
	if err != nil {
		return err
	}
	s.wasm = rt
	s.transforms, err = streams.New(streams.Config{
		NodeID:   cfg.NodeID,
		Client:   []kgo.Opt{kgo.SeedBrokers(s.kafkaL.Addr().String())},
		Runtime:  rt,
		Source:   transformSource{s.broker},
		Logger:   o.logger,
		Interval: cfg.TransformInterval,
	})
	return err
}

// Run serves until ctx is cancelled, then shuts down in order: stop
// accepting, answer in-flight requests, close the logs cleanly.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- s.kafka.Serve(s.kafkaL) }()
	go func() { errc <- s.http.Serve(s.httpL) }()
	tctx, stopTransforms := context.WithCancel(context.Background())
	transformsDone := make(chan struct{})
	go func() {
		defer close(transformsDone)
		s.transforms.Run(tctx)
	}()
	s.ready.Store(true)
	s.logger.Info("weir is ready", "kafka", s.kafkaL.Addr().String(), "http", s.httpL.Addr().String())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		s.logger.Error("listener failed; shutting down", "err", runErr)
	}
	s.ready.Store(false)
	s.logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	// Transforms stop first, while they can still commit their progress;
	// one that does not stop within the shutdown timeout is left behind
	// (closing the module runtime below stops its module).
	stopTransforms()
	select {
	case <-transformsDone:
	case <-sctx.Done():
		s.logger.Warn("transforms did not stop within the shutdown timeout")
	}
	s.wasm.Close(context.Background())
	if err := s.kafka.Shutdown(sctx); err != nil {
		s.logger.Warn("kafka connections cut at shutdown timeout", "err", err)
	}
	if err := s.http.Shutdown(sctx); err != nil {
		s.logger.Warn("http shutdown", "err", err)
	}
	if err := s.broker.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("close broker: %w", err))
	}
	if s.cluster != nil {
		if err := s.cluster.Close(); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("leave cluster: %w", err))
		}
	}
	s.logger.Info("stopped")
	if errors.Is(runErr, kafka.ErrServerClosed) || errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return runErr
}

// Close releases a server that was created but never run.
func (s *Server) Close() error {
	s.closeListeners()
	if s.wasm != nil {
		s.wasm.Close(context.Background())
	}
	err := s.broker.Close()
	if s.cluster != nil {
		err = errors.Join(err, s.cluster.Close())
	}
	return err
}
