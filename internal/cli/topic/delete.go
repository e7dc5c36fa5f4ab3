package topic

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// NewDelete returns `weir topic delete`.
func NewDelete(p *clientcmd.Params, format *string) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Delete topics and all their records",
		Args:    clientcmd.MinArgs(1, "one or more topic NAMEs"),
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
			resps, err := adm.DeleteTopics(ctx, names...)
			if err != nil {
				return fmt.Errorf("delete topics: %w", err)
			}
			res := deleteResult{Deleted: []string{}}
			var errs []error
			for _, name := range names {
				r, ok := resps[name]
				switch {
				case !ok:
					errs = append(errs, fmt.Errorf("delete topic %q: the broker did not answer for it", name))
				case r.Err != nil:
					err := clientcmd.KafkaErr(name, r.Err, r.ErrMessage)
					var unknown *clientcmd.UnknownTopicError
					if !errors.As(err, &unknown) {
						err = fmt.Errorf("delete topic %q: %w", name, err)
					}
					errs = append(errs, err)
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

type deleteResult struct {
	Deleted []string `json:"deleted"`
}

func (r deleteResult) WriteText(w io.Writer) error {
	t := clientcmd.NewTable(w, "TOPIC", "STATUS")
	for _, n := range r.Deleted {
		t.Row(n, "deleted")
	}
	return t.Flush()
}
