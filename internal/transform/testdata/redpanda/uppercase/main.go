// A transform written against Redpanda's Data Transforms Go SDK, unmodified
// from how a Redpanda user writes one: the value in upper case.
package main

import (
	"bytes"

	"github.com/redpanda-data/redpanda/src/transform-sdk/go/transform"
)

func main() {
	transform.OnRecordWritten(func(e transform.WriteEvent, w transform.RecordWriter) error {
		r := e.Record()
		return w.Write(transform.Record{Key: r.Key, Value: bytes.ToUpper(r.Value), Headers: r.Headers})
	})
}
