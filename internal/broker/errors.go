package broker

import "errors"

// Errors the broker returns. The protocol layer maps each to the Kafka error
// code a client expects; the message after the colon is for humans.
var (
	ErrUnknownTopicOrPartition = errors.New("unknown topic or partition")
	ErrTopicExists             = errors.New("topic already exists")
	ErrInvalidTopic            = errors.New("invalid topic")
	ErrInvalidPartitions       = errors.New("invalid partitions")
	ErrInvalidReplication      = errors.New("invalid replication factor")
	ErrInvalidConfig           = errors.New("invalid config")
	ErrInvalidRequest          = errors.New("invalid request")
	ErrMessageTooLarge         = errors.New("message too large")
	ErrCorruptMessage          = errors.New("corrupt message")
	ErrInvalidRecord           = errors.New("invalid record")
	ErrInvalidTimestamp        = errors.New("invalid timestamp")
	ErrOutOfOrderSequence      = errors.New("out of order sequence number")
	ErrInvalidProducerEpoch    = errors.New("invalid producer epoch")
	ErrInvalidTxnState         = errors.New("invalid transaction state")
	ErrStorage                 = errors.New("storage error")
	ErrOffsetOutOfRange        = errors.New("offset out of range")
	ErrUnsupportedForFormat    = errors.New("unsupported for message format")
	ErrBrokerShuttingDown      = errors.New("broker shutting down")
)
