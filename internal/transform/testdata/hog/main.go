// A map module that allocates without bound for a record whose value is
// "hog".
package main

import "github.com/weir-dev/weir/sdk/go/transform"

var kept [][]byte

func init() {
	transform.OnMap(func(r transform.Record) (transform.Record, error) {
		for string(r.Value) == "hog" {
			kept = append(kept, make([]byte, 1<<20))
		}
		return r, nil
	})
}

func main() {}
