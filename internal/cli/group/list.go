package group

import (
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// NewList returns `weir group list`.
func NewList(p *clientcmd.Params, format *string) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List consumer groups with their state and member counts",
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
			listed, err := adm.ListGroups(ctx)
			if err != nil {
				return fmt.Errorf("list groups: %w", err)
			}
			list := groupList{}
			if len(listed) > 0 {
				// ListGroups has no member counts; DescribeGroups has,
				// and a fresher state.
				described, err := adm.DescribeGroups(ctx, listed.Groups()...)
				if err != nil {
					return fmt.Errorf("describe groups: %w", err)
				}
				for _, d := range described.Sorted() {
					if d.Err != nil {
						return fmt.Errorf("describe group %q: %w", d.Group, groupErr(d.Group, d.Err, d.ErrMessage))
					}
					if d.State == "Dead" {
						continue // deleted since it was listed
					}
					list = append(list, listRow{Group: d.Group, State: d.State, ProtocolType: d.ProtocolType, Members: len(d.Members)})
				}
			}
			sort.Slice(list, func(i, j int) bool { return list[i].Group < list[j].Group })
			return f.Print(cmd.OutOrStdout(), list)
		},
	}
}

type listRow struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	Members      int    `json:"members"`
}

type groupList []listRow

func (l groupList) WriteText(w io.Writer) error {
	t := clientcmd.NewTable(w, "GROUP", "STATE", "PROTOCOL-TYPE", "MEMBERS")
	for _, r := range l {
		t.Row(r.Group, r.State, dash(r.ProtocolType), r.Members)
	}
	return t.Flush()
}
