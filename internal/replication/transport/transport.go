// Package transport carries Raft messages between Weir nodes.
//
// Every node runs one Raft group per partition replica plus the controller
// group, so a node pair exchanges messages of thousands of groups. The
// transport therefore works per node, not per group: all envelopes for one
// peer share one connection and one writer, which coalesces whatever is queued
// into a single write (the heartbeats of thousands of groups go out as one
// packet).
//
// Two implementations satisfy Transport: TCP for real nodes, and MemNetwork,
// a goroutine-free, seeded in-memory network whose delivery order and faults
// the test drives step by step. The TCP wire format is described in docs/format/raft-transport.md
// beside this file.
package transport

import (
	"errors"

	"go.etcd.io/raft/v3/raftpb"
)

// Envelope is one Raft message of one Raft group.
//
// Msg is a pointer because raftpb (google.golang.org/protobuf since raft
// v3.7) generates messages that must not be copied, and RawNode hands out and
// takes *raftpb.Message.
type Envelope struct {
	Group uint64          // Raft group id (a partition or the controller)
	Msg   *raftpb.Message // go.etcd.io/raft/v3/raftpb
}

// Handler receives the envelopes a peer sent, in the order it sent them.
// It is called from the transport's goroutines (one per inbound connection,
// so envelopes from different peers can arrive concurrently) and must not
// block for long. The handler owns envs and the messages in it.
type Handler func(from uint64, envs []Envelope)

// Transport sends Raft messages to peers.
type Transport interface {
	// Send queues envelopes for node `to` and returns at once. Delivery is
	// best effort (Raft retransmits): when the peer is unreachable or its
	// queue is full, envelopes are dropped and Unreachable(to) is reported.
	// Send encodes or copies the messages before it returns, so the caller
	// may reuse envs and the messages afterwards. Envelopes with a nil Msg
	// are skipped.
	Send(to uint64, envs []Envelope)
	// SetPeer adds or updates a peer's address; RemovePeer forgets it.
	SetPeer(id uint64, addr string)
	RemovePeer(id uint64)
	Close() error
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("transport closed")

var (
	_ Transport = (*TCP)(nil)
	_ Transport = (*MemEndpoint)(nil)
)
