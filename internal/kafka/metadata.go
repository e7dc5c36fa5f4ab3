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
	resp.Brokers, resp.ControllerID = brokersAndController(s)
	cid := b.ClusterID()
	resp.ClusterID = &cid
	resp.AuthorizedOperations = authorizedOperationsUnset

	all := req.Topics == nil || (h.version == 0 && len(req.Topics) == 0)
	if all {
		for _, t := range b.Topics() {
			resp.Topics = append(resp.Topics, topicMetadata(b, t))
		}
		for _, t := range b.Views() {
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
	for _, p := range t.Partitions() {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.Index()
		mp.Leader, mp.LeaderEpoch, mp.Replicas, mp.ISR = p.LeaderInfo()
		if mp.Leader < 0 {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		mp.OfflineReplicas = []int32{}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// brokersAndController lists the nodes clients may connect to and the
// active controller: this node alone on a single node, every registered
// node in a cluster.
func brokersAndController(s *Server) ([]kmsg.MetadataResponseBroker, int32) {
	b := s.b
	host, port := s.advertised()
	self := kmsg.MetadataResponseBroker{NodeID: b.NodeID(), Host: host, Port: port}
	ctl := b.Cluster()
	if ctl == nil {
		return []kmsg.MetadataResponseBroker{self}, b.NodeID()
	}
	m := ctl.Metadata()
	out := []kmsg.MetadataResponseBroker{self}
	for _, id := range m.NodeIDs() {
		// Like Kafka, list only live brokers: clients pick "any broker"
		// requests from this list.
		if n := m.Nodes[id]; id != b.NodeID() && n.Live() {
			out = append(out, kmsg.MetadataResponseBroker{NodeID: id, Host: n.KafkaHost, Port: n.KafkaPort})
		}
	}
	controller := int32(ctl.Status().Leader)
	if controller == 0 {
		controller = -1
	}
	return out, controller
}
