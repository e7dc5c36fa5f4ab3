// Command weir is Weir's single binary: a broker (`weir serve`) and the
// tools that talk to one.
package main

import (
	"os"

	"github.com/weir-dev/weir/internal/cli"
)

func main() { os.Exit(cli.Main()) }
