package chaos

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Attempt is a value a producer tried to write, acknowledged or not.
type Attempt struct {
	Value     string
	Partition int32
	Sent      time.Time
}

// Ack is a record the cluster acknowledged with acks=all.
type Ack struct {
	Partition int32
	Offset    int64
	Value     string
	Sent      time.Time // when Produce was called
	Acked     time.Time // when the acknowledgement arrived
}

// Read is a record seen at an offset, by the consumer group or the final
// reader.
type Read struct {
	Partition int32
	Offset    int64
	Value     string
}

// Commit is a consumer group's committed offset for a partition as an
// OffsetFetch saw it right after a successful commit.
type Commit struct {
	Partition int32
	Offset    int64
	At        time.Time
}

// Watermark is a partition's high watermark as ListOffsets (latest) reported
// it.
type Watermark struct {
	Partition   int32
	Offset      int64
	LeaderEpoch int32
	At          time.Time
}

// MetaKind is a controller metadata operation.
type MetaKind int

const (
	MetaCreate MetaKind = iota
	MetaDelete
	// MetaDescribe reads whether one topic exists. One list request
	// yields one MetaDescribe per topic it asked about.
	MetaDescribe
)

func (k MetaKind) String() string {
	switch k {
	case MetaCreate:
		return "create"
	case MetaDelete:
		return "delete"
	case MetaDescribe:
		return "describe"
	}
	return fmt.Sprintf("MetaKind(%d)", int(k))
}

// MetaResult is how a metadata operation ended.
type MetaResult int

const (
	// MetaOK: created, deleted, or (describe) the topic exists.
	MetaOK MetaResult = iota
	// MetaAlreadyExists: a create found the topic there.
	MetaAlreadyExists
	// MetaUnknownTopic: a delete or describe found no such topic.
	MetaUnknownTopic
	// MetaFailed: a definite failure that changed nothing (the request
	// was rejected as invalid, or never left the client).
	MetaFailed
	// MetaAmbiguous: no answer (timeout, lost connection, not
	// controller...). The operation may or may not take effect, at any
	// time after it was invoked.
	MetaAmbiguous
)

func (r MetaResult) String() string {
	switch r {
	case MetaOK:
		return "ok"
	case MetaAlreadyExists:
		return "already-exists"
	case MetaUnknownTopic:
		return "unknown-topic"
	case MetaFailed:
		return "failed"
	case MetaAmbiguous:
		return "ambiguous"
	}
	return fmt.Sprintf("MetaResult(%d)", int(r))
}

// MetaOp is one controller metadata operation with its invocation and return
// times, measured on one monotonic clock from the start of the workload.
type MetaOp struct {
	Client int
	Kind   MetaKind
	Topic  string
	Call   time.Duration
	Return time.Duration
	Result MetaResult
	Err    string // the error behind MetaFailed or MetaAmbiguous
}

func (op MetaOp) String() string {
	s := fmt.Sprintf("client %d %s(%s) -> %s [%v, %v]", op.Client, op.Kind, op.Topic, op.Result,
		op.Call.Round(time.Millisecond), op.Return.Round(time.Millisecond))
	if op.Err != "" {
		s += " (" + op.Err + ")"
	}
	return s
}

// History is everything a workload recorded. Each slice is appended by one
// goroutine at a time in the order things happened.
type History struct {
	Attempts   []Attempt
	Acks       []Ack
	Failed     int // produces that ended in an error (their outcome is unknown)
	Consumed   []Read
	Commits    []Commit
	Watermarks []Watermark
	MetaOps    []MetaOp
	Txns       []Txn // the transactional producer's transactions, in order
	Final      []Read
}

// ProducerValue is the value producer p writes as its seq'th record.
func ProducerValue(producer int, seq int64) string {
	return "p" + strconv.Itoa(producer) + "-" + strconv.FormatInt(seq, 10)
}

// ParseProducerValue splits a value made by ProducerValue.
func ParseProducerValue(v string) (producer int, seq int64, ok bool) {
	rest, found := strings.CutPrefix(v, "p")
	if !found {
		return 0, 0, false
	}
	ps, ss, found := strings.Cut(rest, "-")
	if !found {
		return 0, 0, false
	}
	p, err1 := strconv.Atoi(ps)
	s, err2 := strconv.ParseInt(ss, 10, 64)
	if err1 != nil || err2 != nil || p < 0 || s < 0 {
		return 0, 0, false
	}
	return p, s, true
}

// TxnOutcome is how a transaction ended, as far as the client knows.
type TxnOutcome int

const (
	// TxnCommitted: EndTransaction(TryCommit) returned nil.
	TxnCommitted TxnOutcome = iota
	// TxnAborted: the client never asked to commit (it chose to abort, or
	// a record's produce failed and it aborted). A Kafka transaction that
	// was never asked to commit can only end aborted, by EndTxn(abort),
	// by the coordinator's timeout or by the fencing of a new
	// InitProducerId, so this holds even when the abort itself returned
	// an error (AbortErr).
	TxnAborted
	// TxnUnknown: EndTransaction(TryCommit) returned an error: the commit
	// may or may not have taken effect, but it took effect for all of the
	// transaction's records or for none.
	TxnUnknown
)

func (o TxnOutcome) String() string {
	switch o {
	case TxnCommitted:
		return "committed"
	case TxnAborted:
		return "aborted"
	case TxnUnknown:
		return "unknown"
	}
	return fmt.Sprintf("TxnOutcome(%d)", int(o))
}

// TxnRecord is one record a transaction produced.
type TxnRecord struct {
	Value     string
	Partition int32
	Offset    int64  // the acknowledged offset, or -1
	Err       string // why its produce failed, if it did
}

// Txn is one transaction of the transactional producer.
type Txn struct {
	ID      int64
	Records []TxnRecord
	// ChoseAbort is the decision, made before the transaction began, to
	// end it with TryAbort.
	ChoseAbort bool
	// ProduceFailed: some record's produce failed, so the transaction
	// was aborted whatever ChoseAbort said.
	ProduceFailed bool
	Outcome       TxnOutcome
	// EndErr is the error EndTransaction returned: the commit error of a
	// TxnUnknown transaction, or an abort that did not confirm.
	EndErr string
	Began  time.Time
	Ended  time.Time
}

// TxnValue is the value the transactional producer writes as record i of
// transaction txn. It cannot be mistaken for a ProducerValue.
func TxnValue(txn int64, i int) string {
	return "t" + strconv.FormatInt(txn, 10) + "-" + strconv.Itoa(i)
}

// ParseTxnValue splits a value made by TxnValue.
func ParseTxnValue(v string) (txn int64, i int, ok bool) {
	rest, found := strings.CutPrefix(v, "t")
	if !found {
		return 0, 0, false
	}
	ts, is, found := strings.Cut(rest, "-")
	if !found {
		return 0, 0, false
	}
	t, err1 := strconv.ParseInt(ts, 10, 64)
	n, err2 := strconv.Atoi(is)
	if err1 != nil || err2 != nil || t < 0 || n < 0 {
		return 0, 0, false
	}
	return t, n, true
}

// TxnAcks returns the acknowledged records of the transactions, whatever
// their outcome, as acknowledgements: an aborted record still holds its
// offset in the log, though read_committed readers skip it.
func TxnAcks(txns []Txn) []Ack {
	var out []Ack
	for _, t := range txns {
		for _, r := range t.Records {
			if r.Offset >= 0 {
				out = append(out, Ack{Partition: r.Partition, Offset: r.Offset, Value: r.Value, Sent: t.Began})
			}
		}
	}
	return out
}
