// Command uppercase is a map transform: each record's value in upper case.
// ASCII letters are changed in place (a record's bytes belong to the call,
// so a module may rewrite them); other text goes through bytes.ToUpper.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o uppercase.wasm ./examples/uppercase
package main

import (
	"bytes"

	"github.com/weir-dev/weir/sdk/go/transform"
)

func upper(v []byte) []byte {
	for i, c := range v {
		switch {
		case c >= 0x80:
			return bytes.ToUpper(v)
		case 'a' <= c && c <= 'z':
			v[i] = c - 'a' + 'A'
		}
	}
	return v
}

func init() {
	transform.OnMap(func(r transform.Record) (transform.Record, error) {
		r.Value = upper(r.Value)
		return r, nil
	})
}

func main() {}
