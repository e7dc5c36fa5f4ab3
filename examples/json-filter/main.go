// Command json-filter is a filter transform over JSON values: it keeps the
// records whose top-level field named by the "field" parameter equals the
// "equals" parameter (compared as text: "eu", 42, true), or, without
// "equals", has the field at all. Records that are not JSON objects are
// dropped.
package main

import (
	"encoding/json"
	"strings"

	"github.com/weir-dev/weir/sdk/go/transform"
)

func init() {
	transform.OnFilter(func(r transform.Record) bool {
		field, _ := transform.Param("field")
		want, hasWant := transform.Param("equals")
		var obj map[string]json.RawMessage
		if json.Unmarshal(r.Value, &obj) != nil {
			return false
		}
		v, ok := obj[field]
		if !ok || !hasWant {
			return ok
		}
		got := strings.TrimSpace(string(v))
		var s string
		if json.Unmarshal(v, &s) == nil {
			got = s
		}
		return got == want
	})
}

func main() {}
