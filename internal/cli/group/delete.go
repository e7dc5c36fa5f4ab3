package group

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// NewDelete returns `weir group delete`.
func NewDelete(p *clientcmd.Params, format *string) *cobra.Command {
	return &cobra.Command{
		Use:     "delete GROUP...",
		Aliases: []string{"rm"},
		Short:   "Delete empty consumer groups and their committed offsets",
		Long: `Delete consumer groups together with their committed offsets. Only a group
without members can be deleted: the broker refuses one with active consumers
(NON_EMPTY_GROUP).`,
		Args: clientcmd.MinArgs(1, "one or more GROUPs"),
		RunE: func(cmd *cobra.Command, names []string) error {
			f, err := clientcmd.ParseFormat(*format)
			if err != nil {
				return err
			}
			if err := uniqueNames(names); err != nil {
				return err
			}
			adm, err := p.Admin(cmd.Context())
			if err != nil {
				return err
			}
			defer adm.Close()
			ctx, cancel := p.RequestContext(cmd.Context())
			defer cancel()
			resps, err := adm.DeleteGroups(ctx, names...)
			if err != nil {
				return fmt.Errorf("delete groups: %w", err)
			}
			res := deleteResult{Deleted: []string{}}
			var errs []error
			for _, name := range names {
				r, ok := resps[name]
				switch {
				case !ok:
					errs = append(errs, fmt.Errorf("delete group %q: the broker did not answer for it", name))
				case errors.Is(r.Err, kerr.GroupIDNotFound):
					errs = append(errs, &NotFoundError{Group: name})
				case errors.Is(r.Err, kerr.NonEmptyGroup):
					// Say who is still in it, if the broker tells.
					state, members := activity(ctx, adm, name)
					errs = append(errs, &ActiveError{Group: name, What: "delete", State: state, Members: members, Code: kerr.NonEmptyGroup})
				case r.Err != nil:
					errs = append(errs, fmt.Errorf("delete group %q: %w", name, clientcmd.KafkaErr("", r.Err, r.ErrMessage)))
				default:
					res.Deleted = append(res.Deleted, name)
				}
			}
			if len(res.Deleted) > 0 {
				if err := f.Print(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			}
			return errors.Join(errs...)
		},
	}
}

// activity is a group's state and member count, or nothing if the broker
// cannot say.
func activity(ctx context.Context, adm *kadm.Client, group string) (string, int) {
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil || ds[group].Err != nil {
		return "", 0
	}
	return ds[group].State, len(ds[group].Members)
}

type deleteResult struct {
	Deleted []string `json:"deleted"`
}

func (r deleteResult) WriteText(w io.Writer) error {
	t := clientcmd.NewTable(w, "GROUP", "STATUS")
	for _, n := range r.Deleted {
		t.Row(n, "deleted")
	}
	return t.Flush()
}
