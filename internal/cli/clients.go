package cli

import "github.com/spf13/cobra"

// addClientCommands adds the commands that talk to a running broker.
func addClientCommands(root *cobra.Command) {}
