// A map module that never returns for a record whose value is "loop".
package main

import "github.com/weir-dev/weir/sdk/go/transform"

var spins int

func init() {
	transform.OnMap(func(r transform.Record) (transform.Record, error) {
		for string(r.Value) == "loop" {
			spins++
		}
		return r, nil
	})
}

func main() {}
