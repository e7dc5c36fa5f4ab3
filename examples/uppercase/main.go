// Command uppercase is a map transform: each record's value in upper case.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o uppercase.wasm ./examples/uppercase
package main

import (
	"bytes"

	"github.com/weir-dev/weir/sdk/go/transform"
)

func init() {
	transform.OnMap(func(r transform.Record) (transform.Record, error) {
		r.Value = bytes.ToUpper(r.Value)
		return r, nil
	})
}

func main() {}
