package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleInitProducerID gives an idempotent producer a fresh id at epoch 0,
// as Kafka does for producers without a transactional id (whatever id and
// epoch they send); transactional ids go to the transaction coordinator.
func handleInitProducerID(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.SetVersion(h.version)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		// Fencing an open transaction writes markers: off the reader.
		return &pending{later: func(*connWriter) kmsg.Response {
			initTxnProducerID(c, req, resp)
			return resp
		}}
	}
	id, err := c.s.b.InitProducerID()
	if err != nil {
		resp.ErrorCode = errorCode(err)
		return respond(resp)
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return respond(resp)
}
