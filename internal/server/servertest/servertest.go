// Package servertest starts real Weir nodes inside a test process, on
// 127.0.0.1 with ephemeral ports, and restarts them on the same data
// directory.
package servertest

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/weir-dev/weir/internal/config"
	"github.com/weir-dev/weir/internal/server"
)

// Node is a running in-process broker.
type Node struct {
	t      testing.TB
	Config config.Config
	srv    *server.Server
	cancel context.CancelFunc
	done   chan error
}

// Start runs a node in a fresh temp dir; edit may change the config first.
func Start(t testing.TB, edit func(*config.Config)) *Node {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.GroupInitialRebalanceDelay = 0 // tests start their members together anyway
	if edit != nil {
		edit(&cfg)
	}
	n := &Node{t: t, Config: cfg}
	n.start()
	t.Cleanup(func() { n.Stop() })
	return n
}

func (n *Node) start() {
	n.t.Helper()
	if err := n.open(); err != nil {
		n.t.Fatalf("start node: %v", err)
	}
}

// open starts the node; it may run on any goroutine.
func (n *Node) open() error {
	level := slog.LevelWarn
	if os.Getenv("WEIR_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("node", n.Config.NodeID)
	srv, err := server.New(n.Config, server.WithLogger(logger))
	if err != nil {
		return err
	}
	// Restarts keep the ports the node had, as a real restart would.
	n.Config.KafkaAddr = srv.KafkaAddr().String()
	n.Config.HTTPAddr = srv.HTTPAddr().String()
	ctx, cancel := context.WithCancel(context.Background())
	n.srv, n.cancel, n.done = srv, cancel, make(chan error, 1)
	go func() { n.done <- srv.Run(ctx) }()
	return nil
}

// Addr is the Kafka address clients connect to.
func (n *Node) Addr() string { return n.Config.KafkaAddr }

// HTTPAddr is the admin HTTP address.
func (n *Node) HTTPAddr() string { return n.Config.HTTPAddr }

// Server is the running server.
func (n *Node) Server() *server.Server { return n.srv }

// Stop shuts the node down cleanly; it is safe to call twice.
func (n *Node) Stop() {
	if n.srv == nil {
		return
	}
	n.cancel()
	if err := <-n.done; err != nil {
		n.t.Errorf("node stopped with error: %v", err)
	}
	n.srv = nil
}

// Restart stops the node cleanly and starts it again on the same data
// directory and ports.
func (n *Node) Restart() {
	n.t.Helper()
	n.Stop()
	n.start()
}
