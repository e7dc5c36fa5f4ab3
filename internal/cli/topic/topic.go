// Package topic is `weir topic`: create, list, describe, alter and delete
// topics over the Kafka admin APIs.
package topic

import (
	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// New returns the topic command and its verbs.
func New(p *clientcmd.Params) *cobra.Command {
	var format string
	return clientcmd.Noun(p, &format, &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, alter and delete topics",
	},
		NewCreate(p, &format),
		NewList(p, &format),
		NewDescribe(p, &format),
		NewDelete(p, &format),
		NewAlterConfig(p, &format),
		NewAddPartitions(p, &format),
	)
}

// uniqueNames rejects a topic named twice, which Kafka would answer with a
// confusing per-request error.
func uniqueNames(names []string) error {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if seen[n] {
			return &duplicateError{n}
		}
		seen[n] = true
	}
	return nil
}

type duplicateError struct{ name string }

func (e *duplicateError) Error() string { return "topic \"" + e.name + "\" is given more than once" }
