package kafka

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/broker"
)

var errTransactionsUnsupported = fmt.Errorf("%w: transactions are not supported yet", broker.ErrInvalidTxnState)

// handleInitProducerID gives an idempotent producer a fresh id at epoch 0,
// as Kafka does for producers without a transactional id (whatever id and
// epoch they send).
func handleInitProducerID(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.SetVersion(h.version)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return respond(resp)
	}
	id, err := c.s.b.InitProducerID()
	if err != nil {
		resp.ErrorCode = errorCode(err)
		return respond(resp)
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return respond(resp)
}
