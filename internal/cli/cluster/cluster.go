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
	return clientcmd.Noun(p, &format, &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster the brokers belong to",
	}, NewInfo(p, &format))
}
