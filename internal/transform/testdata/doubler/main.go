// A filter-map module: a record whose value is an integer comes out with
// the value doubled; any other record is dropped.
package main

import (
	"strconv"

	"github.com/weir-dev/weir/sdk/go/transform"
)

func init() {
	transform.OnFilterMap(func(r transform.Record) (transform.Record, bool, error) {
		n, err := strconv.Atoi(string(r.Value))
		if err != nil {
			return r, false, nil
		}
		r.Value = []byte(strconv.Itoa(2 * n))
		return r, true, nil
	})
}

func main() {}
