// A filter module that drops every record: the SDK's decode and call cost
// without any output.
package main

import "github.com/weir-dev/weir/sdk/go/transform"

func init() { transform.OnFilter(func(transform.Record) bool { return false }) }

func main() {}
