// An ordinary WASI command, not a transform: no Weir exports.
package main

import "fmt"

func main() { fmt.Println("hello") }
