package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/internal/cli/bench"
	"github.com/weir-dev/weir/internal/cli/clientcmd"
	"github.com/weir-dev/weir/internal/cli/cluster"
	"github.com/weir-dev/weir/internal/cli/consume"
	"github.com/weir-dev/weir/internal/cli/group"
	"github.com/weir-dev/weir/internal/cli/module"
	"github.com/weir-dev/weir/internal/cli/node"
	"github.com/weir-dev/weir/internal/cli/produce"
	"github.com/weir-dev/weir/internal/cli/topic"
	"github.com/weir-dev/weir/internal/cli/transform"
)

// addClientCommands adds the commands that talk to a running broker.
func addClientCommands(root *cobra.Command) {
	root.AddCommand(bench.New())
	// Each command gets its own connection settings; they are filled from
	// its flags and $WEIR_BROKERS when it runs.
	params := func() *clientcmd.Params { return clientcmd.NewParams(os.LookupEnv) }
	root.AddCommand(
		topic.New(params()),
		produce.New(params()),
		consume.New(params()),
		group.New(params()),
		cluster.New(params()),
		node.New(os.LookupEnv),
		module.New(params()),
		transform.New(params()),
		transform.NewView(params()),
	)
}
