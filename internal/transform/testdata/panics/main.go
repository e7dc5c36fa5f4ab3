// A map module that panics (traps) on a record whose value is "panic" and
// returns an error for "fail".
package main

import (
	"errors"

	"github.com/weir-dev/weir/sdk/go/transform"
)

func init() {
	transform.OnMap(func(r transform.Record) (transform.Record, error) {
		switch string(r.Value) {
		case "panic":
			panic("boom")
		case "fail":
			return r, errors.New("cannot take this record")
		}
		return r, nil
	})
}

func main() {}
