// A map module that returns each record as it is: the SDK's and the
// host's cost per record, with no work of its own.
package main

import "github.com/weir-dev/weir/sdk/go/transform"

func init() {
	transform.OnMap(func(r transform.Record) (transform.Record, error) { return r, nil })
}

func main() {}
