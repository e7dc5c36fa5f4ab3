// Command split-array is a flat-map transform: a record whose value is a
// JSON array becomes one record per element (same key, headers and
// timestamp). Any other value fails the record, which the transform's
// error policy then skips, dead-letters or stops on.
package main

import (
	"encoding/json"
	"fmt"

	"github.com/weir-dev/weir/sdk/go/transform"
)

func init() {
	transform.OnFlatMap(func(r transform.Record, emit func(transform.Record)) error {
		var items []json.RawMessage
		if err := json.Unmarshal(r.Value, &items); err != nil {
			return fmt.Errorf("value is not a JSON array: %w", err)
		}
		for _, it := range items {
			out := r
			out.Value = it
			emit(out)
		}
		return nil
	})
}

func main() {}
