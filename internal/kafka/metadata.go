package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/broker"
)

// authorizedOperationsUnset is what Kafka sends when operations were not
// requested.
const authorizedOperationsUnset = -2147483648

func handleMetadata(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	resp.SetVersion(h.version)
	s := c.s
	b := s.b
	host, port := s.advertised()
	resp.Brokers = []kmsg.MetadataResponseBroker{{NodeID: b.NodeID(), Host: host, Port: port}}
	cid := b.ClusterID()
	resp.ClusterID = &cid
	resp.ControllerID = b.NodeID()
	resp.AuthorizedOperations = authorizedOperationsUnset

	all := req.Topics == nil || (h.version == 0 && len(req.Topics) == 0)
	if all {
		for _, t := range b.Topics() {
			resp.Topics = append(resp.Topics, topicMetadata(b, t))
		}
		return respond(resp)
	}
	autoCreate := h.version < 4 || req.AllowAutoTopicCreation
	for _, rt := range req.Topics {
		if rt.Topic == nil {
			// Lookup by id (v12+).
			t, ok := b.TopicByID(rt.TopicID)
			if !ok {
				mt := kmsg.NewMetadataResponseTopic()
				mt.TopicID = rt.TopicID
				mt.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			resp.Topics = append(resp.Topics, topicMetadata(b, t))
			continue
		}
		name := *rt.Topic
		t, ok := b.Topic(name)
		var err error
		if !ok {
			if err = broker.ValidateTopicName(name); err == nil {
				if autoCreate {
					t, err = b.AutoCreateTopic(name)
				} else {
					err = broker.ErrUnknownTopicOrPartition
				}
			}
		}
		if err != nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = &name
			mt.ErrorCode = errorCode(err)
			if errors.Is(err, broker.ErrInvalidTopic) {
				mt.ErrorCode = kerr.InvalidTopicException.Code
			}
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, topicMetadata(b, t))
	}
	return respond(resp)
}

func topicMetadata(b *broker.Broker, t *broker.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	mt.TopicID = t.ID
	mt.IsInternal = t.Internal()
	mt.AuthorizedOperations = authorizedOperationsUnset
	node := b.NodeID()
	for _, p := range t.Partitions() {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.Index()
		mp.Leader = node
		mp.LeaderEpoch = p.LeaderEpoch()
		mp.Replicas = []int32{node}
		mp.ISR = []int32{node}
		mp.OfflineReplicas = []int32{}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}
