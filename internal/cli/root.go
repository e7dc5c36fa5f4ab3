// Package cli is Weir's command line: `weir serve` runs a node, the other
// commands talk to a running node over the Kafka protocol. Commands return
// errors; only main turns them into an exit status.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/internal/cli/serve"
)

// Version is the build's version, set by the linker.
var Version = "dev"

// NewRoot builds the command tree.
func NewRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "weir",
		Short:         "Weir: a Kafka-compatible streaming platform in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(serve.New())
	addClientCommands(root)
	for _, c := range root.Commands() {
		if c.Name() == "cluster" {
			c.AddCommand(serve.NewLocalCluster())
		}
	}
	return root
}

// Execute runs the CLI and returns the process exit status. Errors are one
// line on stderr, never a stack trace.
func Execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := NewRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
		fmt.Fprintf(stderr, "weir: %s\n", msg)
		return 1
	}
	return 0
}

// Main is the entry point used by cmd/weir.
func Main() int { return Execute(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr) }
