// A map module that reports what the sandbox lets it see: whether it can
// read a file, resolve or dial the network, and what time and environment
// it is given.
package main

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/weir-dev/weir/sdk/go/transform"
)

func init() {
	transform.OnMap(func(r transform.Record) (transform.Record, error) {
		_, ferr := os.ReadFile("/etc/hostname")
		_, derr := net.Dial("tcp", "127.0.0.1:9092")
		r.Value = []byte(fmt.Sprintf("file=%v net=%v year=%d env=%d", ferr != nil, derr != nil, time.Now().Year(), len(os.Environ())))
		return r, nil
	})
}

func main() {}
