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
