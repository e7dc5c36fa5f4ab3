// Command benchreport prints the Markdown summary of a bench-compare run:
// medians with ranges per system, ratios of Weir to each peer, and the
// targets met or missed.
//
// Usage: benchreport results.jsonl
package main

import (
	"fmt"
	"os"

	"github.com/weir-dev/weir/bench/peers/report"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: benchreport results.jsonl")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		os.Exit(1)
	}
	defer f.Close()
	lines, err := report.Read(f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	t := report.Build(lines)
	systems := []report.System{{Key: "weir", Label: "Weir"}, {Key: "kfake", Label: "kfake+fsync"}, {Key: "nats", Label: "JetStream"}}
	report.Write(os.Stdout, t, systems, t.Targets("weir", "kfake", "nats"))
}
