// A Redpanda SDK transform that routes by value to the second output topic
// (named by REDPANDA_OUTPUT_TOPIC_1), drops empty values, and panics on
// "boom".
package main

import (
	"os"

	"github.com/redpanda-data/redpanda/src/transform-sdk/go/transform"
)

func main() {
	second := os.Getenv("REDPANDA_OUTPUT_TOPIC_1")
	transform.OnRecordWritten(func(e transform.WriteEvent, w transform.RecordWriter) error {
		r := e.Record()
		switch string(r.Value) {
		case "":
			return nil
		case "boom":
			panic("boom")
		case "second":
			return w.Write(r, transform.ToTopic(second))
		}
		return w.Write(r)
	})
}
