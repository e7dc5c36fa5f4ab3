package kafka

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/broker"
)

func handleCreateTopics(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	resp.SetVersion(h.version)
	b := c.s.b
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		err := func() error {
			if seen[rt.Topic] > 1 {
				return fmt.Errorf("%w: topic %q appears more than once in the request", broker.ErrInvalidRequest, rt.Topic)
			}
			spec := broker.TopicSpec{Name: rt.Topic, Partitions: rt.NumPartitions, ReplicationFactor: rt.ReplicationFactor, Configs: map[string]string{}}
			if len(rt.ReplicaAssignment) > 0 {
				if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
					return fmt.Errorf("%w: give either a replica assignment or partitions and replication factor", broker.ErrInvalidRequest)
				}
				spec.Partitions = int32(len(rt.ReplicaAssignment))
				for i, a := range rt.ReplicaAssignment {
					if a.Partition != int32(i) || len(a.Replicas) != 1 || a.Replicas[0] != b.NodeID() {
						return errInvalidAssignment
					}
				}
				spec.ReplicationFactor = 1
			}
			for _, cfg := range rt.Configs {
				if cfg.Value == nil {
					continue
				}
				spec.Configs[cfg.Name] = *cfg.Value
			}
			t, err := b.CreateTopic(spec, req.ValidateOnly)
			if err != nil {
				return err
			}
			if t != nil {
				st.TopicID = t.ID
			}
			st.NumPartitions = spec.Partitions
			if spec.Partitions == -1 {
				st.NumPartitions = b.DefaultPartitions()
			}
			st.ReplicationFactor = spec.ReplicationFactor
			if st.ReplicationFactor == -1 {
				st.ReplicationFactor = b.DefaultReplicationFactor()
			}
			return nil
		}()
		if err != nil {
			st.ErrorCode = errorCode(err)
			if err == errInvalidAssignment {
				st.ErrorCode = kerr.InvalidReplicaAssignment.Code
			}
			st.ErrorMessage = errorMessage(err)
		} else if h.version >= 5 {
			entries, _ := topicConfigEntries(b, rt.Topic, req.ValidateOnly)
			for _, e := range entries {
				cfg := kmsg.NewCreateTopicsResponseTopicConfig()
				cfg.Name = e.Name
				v := e.Value
				cfg.Value = &v
				cfg.Source = int8(e.Source)
				st.Configs = append(st.Configs, cfg)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return respond(resp)
}

var errInvalidAssignment = fmt.Errorf("%w: a single broker can only assign each partition, in order, to itself", broker.ErrInvalidRequest)

func topicConfigEntries(b *broker.Broker, topic string, validateOnly bool) ([]broker.ConfigEntry, error) {
	if validateOnly {
		return nil, nil
	}
	return b.DescribeTopicConfigs(topic)
}

func handleDeleteTopics(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	resp.SetVersion(h.version)
	b := c.s.b
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	if h.version >= 6 {
		for _, t := range req.Topics {
			targets = append(targets, target{t.Topic, t.TopicID})
		}
	} else {
		for _, n := range req.TopicNames {
			targets = append(targets, target{name: &n})
		}
	}
	for _, tg := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = tg.name, tg.id
		name := ""
		if tg.name != nil {
			name = *tg.name
		} else if t, ok := b.TopicByID(tg.id); ok {
			name = t.Name
			n := name
			st.Topic = &n
		} else {
			st.ErrorCode = kerr.UnknownTopicID.Code
			resp.Topics = append(resp.Topics, st)
			continue
		}
		if t, ok := b.Topic(name); ok {
			st.TopicID = t.ID
		}
		if err := b.DeleteTopic(name); err != nil {
			st.ErrorCode = errorCode(err)
			st.ErrorMessage = errorMessage(err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return respond(resp)
}

func handleCreatePartitions(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	resp.SetVersion(h.version)
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		var err error
		if len(rt.Assignment) > 0 {
			for _, a := range rt.Assignment {
				if len(a.Replicas) != 1 || a.Replicas[0] != c.s.b.NodeID() {
					err = errInvalidAssignment
				}
			}
		}
		if err == nil {
			err = c.s.b.CreatePartitions(rt.Topic, rt.Count, req.ValidateOnly)
		}
		if err != nil {
			st.ErrorCode = errorCode(err)
			if err == errInvalidAssignment {
				st.ErrorCode = kerr.InvalidReplicaAssignment.Code
			}
			st.ErrorMessage = errorMessage(err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return respond(resp)
}

func handleDeleteRecords(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	resp.SetVersion(h.version)
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			p, err := c.s.b.Partition(rt.Topic, rp.Partition)
			if t, ok := c.s.b.Topic(rt.Topic); ok && t.IsView() {
				err = broker.ErrReadOnlyView
			}
			if err == nil && c.s.b.Cluster() != nil {
				err = fmt.Errorf("%w: DeleteRecords is not replicated yet; it is refused in a cluster", broker.ErrInvalidRequest)
			}
			if err == nil {
				sp.LowWatermark, err = p.DeleteRecordsBefore(rp.Offset)
			}
			sp.ErrorCode = errorCode(err)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return respond(resp)
}

func handleOffsetForLeaderEpoch(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	resp.SetVersion(h.version)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			p, err := c.s.b.Partition(rt.Topic, rp.Partition)
			if err == nil {
				err = p.Serving()
			}
			switch {
			case err != nil:
				sp.ErrorCode = errorCode(err)
			case leaderEpochError(p, rp.CurrentLeaderEpoch) != 0:
				sp.ErrorCode = leaderEpochError(p, rp.CurrentLeaderEpoch)
			default:
				sp.LeaderEpoch, sp.EndOffset = p.EndOffsetForEpoch(rp.LeaderEpoch)
				if sp.LeaderEpoch == -1 && rp.LeaderEpoch >= p.LeaderEpoch() {
					// An empty log: the current epoch ends at the log end.
					sp.LeaderEpoch, sp.EndOffset = p.LeaderEpoch(), p.LogEndOffset()
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return respond(resp)
}
