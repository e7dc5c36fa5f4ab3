// Command key-counter is an aggregate transform: it counts records per key
// and emits, for each record, the key with its new count as the value (a
// changelog: a compacted output topic holds the current count per key).
// Records without a key count under the "key" parameter's value, or
// "(none)".
package main

import (
	"strconv"

	"github.com/weir-dev/weir/sdk/go/transform"
)

func init() {
	transform.OnAggregate(func(s transform.State, r transform.Record, emit func(transform.Record)) error {
		key := r.Key
		if key == nil {
			def, ok := transform.Param("key")
			if !ok {
				def = "(none)"
			}
			key = []byte(def)
		}
		n := 0
		if v, ok := s.Get(key); ok {
			n, _ = strconv.Atoi(string(v))
		}
		n++
		count := []byte(strconv.Itoa(n))
		s.Set(key, count)
		emit(transform.Record{Key: key, Value: count, Timestamp: r.Timestamp})
		return nil
	})
}

func main() {}
