package topic

import (
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// NewList returns `weir topic list`.
func NewList(p *clientcmd.Params, format *string) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List topics with their partition and replica counts",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := clientcmd.ParseFormat(*format)
			if err != nil {
				return err
			}
			adm, err := p.Admin(cmd.Context())
			if err != nil {
				return err
			}
			defer adm.Close()
			ctx, cancel := p.RequestContext(cmd.Context())
			defer cancel()
			tds, err := adm.ListTopics(ctx)
			if err != nil {
				return fmt.Errorf("list topics: %w", err)
			}
			list := topicList{}
			for _, td := range tds {
				if td.Err != nil {
					return fmt.Errorf("list topics: topic %q: %w", td.Topic, td.Err)
				}
				list = append(list, topicRow{Name: td.Topic, Partitions: len(td.Partitions), Replicas: td.Partitions.NumReplicas()})
			}
			sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
			return f.Print(cmd.OutOrStdout(), list)
		},
	}
}

type topicRow struct {
	Name       string `json:"name"`
	Partitions int    `json:"partitions"`
	Replicas   int    `json:"replicas"`
}

type topicList []topicRow

func (l topicList) WriteText(w io.Writer) error {
	t := clientcmd.NewTable(w, "NAME", "PARTITIONS", "REPLICAS")
	for _, r := range l {
		t.Row(r.Name, r.Partitions, r.Replicas)
	}
	return t.Flush()
}
