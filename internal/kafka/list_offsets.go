package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/broker"
)

// Special ListOffsets timestamps.
const (
	listLatest        = -1
	listEarliest      = -2
	listMaxTimestamp  = -3 // v7+
	listEarliestLocal = -4 // v8+; without tiered storage, the log start
)

func handleListOffsets(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	resp.SetVersion(h.version)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			p, err := c.s.b.Partition(rt.Topic, rp.Partition)
			if err == nil {
				err = p.Serving()
			}
			switch {
			case err != nil:
				sp.ErrorCode = errorCode(err)
			default:
				if sp.ErrorCode = leaderEpochError(p, rp.CurrentLeaderEpoch); sp.ErrorCode == 0 {
					sp.ErrorCode = listOffset(p, rp.Timestamp, req.IsolationLevel, &sp)
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return respond(resp)
}

// leaderEpochError checks the leader epoch a client believes current (-1:
// unknown) against the partition's, as Fetch, ListOffsets and
// OffsetForLeaderEpoch do: older is fenced, newer is not known here yet.
func leaderEpochError(p *broker.Partition, clientEpoch int32) int16 {
	switch epoch := p.LeaderEpoch(); {
	case clientEpoch == -1 || clientEpoch == epoch:
		return 0
	case clientEpoch < epoch:
		return kerr.FencedLeaderEpoch.Code
	default:
		return kerr.UnknownLeaderEpoch.Code
	}
}

func listOffset(p *broker.Partition, ts int64, isolation int8, sp *kmsg.ListOffsetsResponseTopicPartition) int16 {
	sp.LeaderEpoch = p.LeaderEpoch()
	switch ts {
	case listLatest:
		sp.Offset = p.HighWatermark()
		if isolation == 1 {
			sp.Offset = p.LastStableOffset()
		}
	case listEarliest, listEarliestLocal:
		sp.Offset = p.LogStartOffset()
	case listMaxTimestamp:
		if off, t, ok := p.MaxTimestamp(); ok {
			sp.Offset, sp.Timestamp = off, t
		}
	default:
		if ts < 0 {
			return kerr.InvalidRequest.Code
		}
		off, t, found, err := p.OffsetForTimestamp(ts)
		if err != nil {
			return errorCode(err)
		}
		if found {
			sp.Offset, sp.Timestamp = off, t
		}
	}
	return 0
}
