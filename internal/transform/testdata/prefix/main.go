// A filter module that keeps records whose value starts with the "prefix"
// parameter: a filter whose own work is negligible, for measuring what a
// deployed transform costs.
package main

import (
	"bytes"

	"github.com/weir-dev/weir/sdk/go/transform"
)

var prefix []byte

func init() {
	transform.OnFilter(func(r transform.Record) bool {
		if prefix == nil {
			p, _ := transform.Param("prefix")
			prefix = []byte(p)
		}
		return bytes.HasPrefix(r.Value, prefix)
	})
}

func main() {}
