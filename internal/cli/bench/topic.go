package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ensureTopic creates topic with the given partitions unless it exists and
// returns the partition count it has. Plain kmsg requests keep the main
// module free of kadm.
func ensureTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32, configs map[string]string) (int32, error) {
	req := kmsg.NewPtrCreateTopicsRequest()
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = topic, partitions, 1
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		t.Configs = append(t.Configs, c)
	}
	req.Topics = append(req.Topics, t)
	req.TimeoutMillis = 30000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, fmt.Errorf("create topic %s: %w", topic, err)
	}
	for _, rt := range resp.Topics {
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return 0, fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	return partitionCount(ctx, cl, topic)
}

// partitionCount asks for the topic's metadata until every partition has a
// leader; a topic created a moment ago may not be fully visible yet.
func partitionCount(ctx context.Context, cl *kgo.Client, topic string) (int32, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return 0, fmt.Errorf("metadata for %s: %w", topic, err)
		}
		var lastErr error
		if len(resp.Topics) == 1 {
			mt := resp.Topics[0]
			lastErr = kerr.ErrorForCode(mt.ErrorCode)
			if lastErr == nil && len(mt.Partitions) > 0 {
				ready := true
				for _, p := range mt.Partitions {
					if p.Leader < 0 || p.ErrorCode != 0 {
						ready = false
					}
				}
				if ready {
					return int32(len(mt.Partitions)), nil
				}
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("topic %s not ready after 10s (last error: %v)", topic, lastErr)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// offsets returns, per partition, the earliest (ts -2) or latest (ts -1)
// offset of topic.
func offsets(ctx context.Context, cl *kgo.Client, topic string, partitions int32, ts int64) (map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = p, ts, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("list offsets of %s/%d: %w", topic, p.Partition, err)
			}
			out[p.Partition] = p.Offset
		}
	}
	if len(out) != int(partitions) {
		return nil, fmt.Errorf("list offsets of %s: %d of %d partitions answered", topic, len(out), partitions)
	}
	return out, nil
}

// assign splits partitions 0..n-1 round-robin among k consumers, each
// starting at its partition's offset in from. Consumers beyond n get none
// and are left out.
func assign(topic string, n int32, k int, from map[int32]int64) []map[string]map[int32]kgo.Offset {
	k = min(k, int(n))
	out := make([]map[string]map[int32]kgo.Offset, k)
	for i := range out {
		out[i] = map[string]map[int32]kgo.Offset{topic: {}}
	}
	for p := range n {
		out[int(p)%k][topic][p] = kgo.NewOffset().At(from[p])
	}
	return out
}
