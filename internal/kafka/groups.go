package kafka

import (
	"context"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/group"
)

// Group APIs run on the writer goroutine: JoinGroup and SyncGroup wait for
// the rebalance round, and the others may wait for an fsync.

// groupCtx carries the connection's lifetime and the client's identity,
// which member ids and DescribeGroups use.
func (c *conn) groupCtx(h *requestHeader) context.Context {
	host := c.nc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return group.WithClient(c.ctx, h.clientID, "/"+host)
}

// knownPartition reports whether a topic-partition exists, for commits.
func (c *conn) knownPartition(topic string, partition int32) bool {
	_, err := c.s.b.Partition(topic, partition)
	return err == nil
}

func handleJoinGroup(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.JoinGroupRequest)
	ctx := c.groupCtx(h)
	return &pending{later: func(*connWriter) kmsg.Response { return c.s.b.GroupCoordinator(req.Group).Join(ctx, req) }}
}

func handleSyncGroup(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.SyncGroupRequest)
	ctx := c.groupCtx(h)
	return &pending{later: func(*connWriter) kmsg.Response { return c.s.b.GroupCoordinator(req.Group).Sync(ctx, req) }}
}

func handleHeartbeat(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.HeartbeatRequest)
	return &pending{later: func(*connWriter) kmsg.Response { return c.s.b.GroupCoordinator(req.Group).Heartbeat(req) }}
}

func handleLeaveGroup(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.LeaveGroupRequest)
	return &pending{later: func(*connWriter) kmsg.Response { return c.s.b.GroupCoordinator(req.Group).Leave(req) }}
}

func handleOffsetCommit(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.OffsetCommitRequest)
	return &pending{later: func(*connWriter) kmsg.Response {
		return c.s.b.GroupCoordinator(req.Group).CommitOffsets(req, c.knownPartition)
	}}
}

func handleOffsetFetch(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.OffsetFetchRequest)
	return &pending{later: func(*connWriter) kmsg.Response { return c.fetchOffsets(req) }}
}

func handleOffsetDelete(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.OffsetDeleteRequest)
	return &pending{later: func(*connWriter) kmsg.Response {
		// Unknown partitions are answered here, as Kafka's API layer does.
		known := *req
		known.Topics = nil
		var unknown []kmsg.OffsetDeleteResponseTopic
		for _, t := range req.Topics {
			kt := t
			kt.Partitions = nil
			ut := kmsg.NewOffsetDeleteResponseTopic()
			ut.Topic = t.Topic
			for _, p := range t.Partitions {
				if c.knownPartition(t.Topic, p.Partition) {
					kt.Partitions = append(kt.Partitions, p)
					continue
				}
				up := kmsg.NewOffsetDeleteResponseTopicPartition()
				up.Partition, up.ErrorCode = p.Partition, unknownTopicCode
				ut.Partitions = append(ut.Partitions, up)
			}
			if len(kt.Partitions) > 0 {
				known.Topics = append(known.Topics, kt)
			}
			if len(ut.Partitions) > 0 {
				unknown = append(unknown, ut)
			}
		}
		resp := c.s.b.GroupCoordinator(req.Group).DeleteOffsets(&known)
		if resp.ErrorCode == 0 {
			resp.Topics = append(resp.Topics, unknown...)
		}
		return resp
	}}
}

func handleDescribeGroups(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.DescribeGroupsRequest)
	return &pending{later: func(*connWriter) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
		resp.SetVersion(req.Version)
		resp.Groups = eachCoordinator(req.Groups, func(g string) []kmsg.DescribeGroupsResponseGroup {
			one := *req
			one.Groups = []string{g}
			return c.s.b.GroupCoordinator(g).Describe(&one).Groups
		})
		return resp
	}}
}

func handleListGroups(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.ListGroupsRequest)
	return &pending{later: func(*connWriter) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
		resp.SetVersion(req.Version)
		for _, m := range c.s.b.GroupCoordinators() {
			r := m.List(req)
			if r.ErrorCode != 0 {
				return r
			}
			resp.Groups = append(resp.Groups, r.Groups...)
		}
		return resp
	}}
}

func handleDeleteGroups(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.DeleteGroupsRequest)
	return &pending{later: func(*connWriter) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
		resp.SetVersion(req.Version)
		resp.Groups = eachCoordinator(req.Groups, func(g string) []kmsg.DeleteGroupsResponseGroup {
			one := *req
			one.Groups = []string{g}
			return c.s.b.GroupCoordinator(g).Delete(&one).Groups
		})
		return resp
	}}
}

// handleTxnOffsetCommit checks the producer's transaction with the
// transaction coordinator, then stages the offsets in the group.
func handleTxnOffsetCommit(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.TxnOffsetCommitRequest)
	return &pending{later: func(*connWriter) kmsg.Response {
		txns := c.s.b.Transactions()
		var err error
		if txns == nil {
			// A cluster: the transaction coordinator may be on another
			// node, and the group's coordinator takes the offsets as
			// Kafka's does, settled by the transaction's marker.
			return c.s.b.GroupCoordinator(req.Group).CommitTxnOffsets(req, c.knownPartition)
		}
		if req.Version >= 5 {
			// KIP-890 part 2: the commit adds the group to the transaction.
			err = txns.AddOffsets(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group)
		}
		if err == nil {
			err = txns.CheckTxnOffsetCommit(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group)
		}
		if err != nil {
			resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
			resp.SetVersion(req.Version)
			code := txnErrorCode(err, req.Version, 3)
			for _, t := range req.Topics {
				rt := kmsg.NewTxnOffsetCommitResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
					rp.Partition, rp.ErrorCode = p.Partition, code
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			return resp
		}
		return c.s.b.GroupCoordinator(req.Group).CommitTxnOffsets(req, c.knownPartition)
	}}
}

// fetchOffsets sends each group of a batched OffsetFetch (v8+) to its own
// coordinator; in a cluster they may differ.
func (c *conn) fetchOffsets(req *kmsg.OffsetFetchRequest) kmsg.Response {
	if len(req.Groups) == 0 {
		return c.s.b.GroupCoordinator(req.Group).FetchOffsets(req)
	}
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	resp.SetVersion(req.Version)
	for _, g := range req.Groups {
		one := *req
		one.Groups = []kmsg.OffsetFetchRequestGroup{g}
		r := c.s.b.GroupCoordinator(g.Group).FetchOffsets(&one)
		resp.Groups = append(resp.Groups, r.Groups...)
	}
	return resp
}

// eachCoordinator asks each group's coordinator about that group alone (in
// a cluster they may be different coordinators) and gathers the answers.
func eachCoordinator[G any](groups []string, ask func(group string) []G) []G {
	var out []G
	for _, g := range groups {
		out = append(out, ask(g)...)
	}
	return out
}
