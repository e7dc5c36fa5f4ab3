// Package streams runs deployed transforms inside the broker: for every
// transform in the catalog (internal/hub), on every input partition this
// node leads, a runner reads the partition's batches from the local log,
// passes them through the module and writes the results to the output
// topics, then commits its progress. At least once: outputs are
// acknowledged before the input offset (and an aggregate's state) is
// saved, so a crash repeats work but never skips it.
package streams

import (
	"context"
	"errors"
)

// Source is the local broker as the engine sees it.
type Source interface {
	// Led lists the partitions of topic this node leads and serves now.
	Led(topic string) []int32
	// Read returns batches of a led partition from offset, up to about
	// maxBytes, never above the last stable offset.
	Read(topic string, partition int32, offset int64, maxBytes int) (Batches, error)
	// Changed returns a channel closed when the partition's high watermark
	// moves (take it before Read so no change is missed).
	Changed(topic string, partition int32) (<-chan struct{}, error)
	// Partitions is topic's partition count, 0 if the topic is not known
	// here.
	Partitions(topic string) int32
	// Produce appends a batch without a producer id, built by the runner
	// from records validated before, to a partition this node leads, as a
	// produce request would (only its frame and checksum are checked
	// again), and returns a wait for its commit; ErrNotLocal if the
	// partition is led elsewhere.
	Produce(topic string, partition int32, batch []byte) (wait func(context.Context) error, err error)
	// SetView makes a read-only topic whose batches fn computes from
	// source's at fetch time; RemoveView drops it.
	SetView(name, source string, fn func(dst, batch []byte) ([]byte, error)) error
	RemoveView(name string)
}

// Batches is what Read returns.
type Batches struct {
	Data           []byte // whole Kafka v2 batches
	HighWatermark  int64
	LogStartOffset int64
	// Aborted lists the aborted transactions overlapping Data, whose
	// records a runner skips.
	Aborted []Aborted
}

// Aborted is an aborted transaction: its producer's batches from
// FirstOffset up to its abort marker are not to be read.
type Aborted struct {
	ProducerID  int64
	FirstOffset int64
}

// ErrOffsetOutOfRange is what Read returns for an offset below the log
// start (retention removed it) or beyond the end.
var ErrOffsetOutOfRange = errors.New("offset out of range")
