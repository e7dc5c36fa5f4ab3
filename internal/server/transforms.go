package server

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/weir-dev/weir/internal/broker"
	"github.com/weir-dev/weir/internal/streams"
)

// transformSource is the broker as the transform engine reads it.
type transformSource struct{ b *broker.Broker }

func (s transformSource) partition(topic string, p int32) (*broker.Partition, error) {
	t, ok := s.b.Topic(topic)
	if !ok {
		return nil, broker.ErrUnknownTopicOrPartition
	}
	part, ok := t.Partition(p)
	if !ok {
		return nil, broker.ErrUnknownTopicOrPartition
	}
	return part, nil
}

func (s transformSource) Led(topic string) []int32 {
	t, ok := s.b.Topic(topic)
	if !ok {
		return nil
	}
	var out []int32
	for _, p := range t.Partitions() {
		if p.Serving() == nil {
			out = append(out, p.Index())
		}
	}
	return out
}

func (s transformSource) Read(topic string, p int32, offset int64, maxBytes int) (streams.Batches, error) {
	part, err := s.partition(topic, p)
	if err != nil {
		return streams.Batches{}, err
	}
	res, err := part.Read(nil, offset, maxBytes, true, true)
	out := streams.Batches{Data: res.Batches, HighWatermark: res.HighWatermark, LogStartOffset: res.LogStartOffset}
	if errors.Is(err, broker.ErrOffsetOutOfRange) {
		out.LogStartOffset = part.LogStartOffset()
		return out, streams.ErrOffsetOutOfRange
	}
	for _, a := range res.Aborted {
		out.Aborted = append(out.Aborted, streams.Aborted{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset})
	}
	return out, err
}

func (s transformSource) Changed(topic string, p int32) (<-chan struct{}, error) {
	part, err := s.partition(topic, p)
	if err != nil {
		return nil, err
	}
	if err := part.Serving(); err != nil {
		return nil, err
	}
	return part.Changed(), nil
}

func (s transformSource) Partitions(topic string) int32 {
	t, ok := s.b.Topic(topic)
	if !ok || t.IsView() {
		return 0
	}
	return t.NumPartitions()
}

func (s transformSource) Produce(topic string, p int32, batch []byte) (func(context.Context) error, error) {
	part, err := s.partition(topic, p)
	if err != nil || part.Serving() != nil {
		return nil, streams.ErrNotLocal
	}
	res, err := part.ProduceBuilt(batch)
	if errors.Is(err, broker.ErrNotLeader) || errors.Is(err, broker.ErrUnknownTopicOrPartition) {
		return nil, streams.ErrNotLocal
	}
	if err != nil {
		return nil, err
	}
	c := res.Committed
	if c == nil {
		return func(context.Context) error { return nil }, nil
	}
	return func(ctx context.Context) error {
		select {
		case <-c.Done():
			_, err := c.Result()
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}, nil
}

func transformCacheDir(dataDir string) string { return filepath.Join(dataDir, "transform-cache") }

func (s transformSource) SetView(name, source string, fn func(dst, batch []byte) ([]byte, error)) error {
	return s.b.SetView(name, source, fn)
}

func (s transformSource) RemoveView(name string) { s.b.RemoveView(name) }
