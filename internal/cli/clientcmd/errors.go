package clientcmd

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// UnknownTopicError is what every command reports for a topic the broker
// does not have, instead of Kafka's generic UNKNOWN_TOPIC_OR_PARTITION.
type UnknownTopicError struct{ Topic string }

func (e *UnknownTopicError) Error() string { return fmt.Sprintf("topic %q does not exist", e.Topic) }

func (e *UnknownTopicError) Unwrap() error { return kerr.UnknownTopicOrPartition }

// BrokerError is a Kafka error code together with the broker's own message,
// which is usually more specific than the code's stock description.
type BrokerError struct {
	Code    *kerr.Error
	Message string
}

func (e *BrokerError) Error() string { return e.Code.Message + ": " + e.Message }

func (e *BrokerError) Unwrap() error { return e.Code }

// KafkaErr attaches the broker's message to a Kafka error, and turns an
// unknown topic into UnknownTopicError. It returns nil for a nil err.
func KafkaErr(topic string, err error, message string) error {
	if err == nil {
		return nil
	}
	if topic != "" && errors.Is(err, kerr.UnknownTopicOrPartition) {
		return &UnknownTopicError{Topic: topic}
	}
	var ke *kerr.Error
	if message != "" && errors.As(err, &ke) && err == error(ke) {
		return &BrokerError{Code: ke, Message: message}
	}
	return err
}
