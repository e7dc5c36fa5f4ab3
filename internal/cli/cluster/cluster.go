// Package cluster is `weir cluster`: what a client sees of the cluster it is
// connected to.
package cluster

import (
	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// New returns the cluster command and its verbs.
func New(p *clientcmd.Params) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster the brokers belong to",
		Args:  cobra.NoArgs,
		RunE:  clientcmd.NounRunE,
	}
	p.AddConnFlags(cmd.PersistentFlags())
	clientcmd.AddFormatFlag(cmd.PersistentFlags(), &format)
	cmd.AddCommand(NewInfo(p, &format))
	return cmd
}
