package topic

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// NewAddPartitions returns `weir topic add-partitions`.
func NewAddPartitions(p *clientcmd.Params, format *string) *cobra.Command {
	var (
		num    int
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "add-partitions NAME... --num N",
		Short: "Add partitions to topics",
		Long: `Add N partitions to each topic. Partitions cannot be removed again, and records
with a key may map to a different partition afterwards.`,
		Args: clientcmd.MinArgs(1, "one or more topic NAMEs"),
		RunE: func(cmd *cobra.Command, names []string) error {
			f, err := clientcmd.ParseFormat(*format)
			if err != nil {
				return err
			}
			if num <= 0 {
				return fmt.Errorf("--num must be at least 1, not %d", num)
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
			// The counts before are needed to report the counts after; the
			// admin client's cached metadata would not see the new ones.
			tds, err := adm.ListTopics(ctx, names...)
			if err != nil {
				return fmt.Errorf("list topics: %w", err)
			}
			add := adm.CreatePartitions
			if dryRun {
				add = adm.ValidateCreatePartitions
			}
			resps, err := add(ctx, num, names...)
			if err != nil {
				return fmt.Errorf("add partitions: %w", err)
			}
			res := addResult{DryRun: dryRun, Topics: []addedPartitions{}}
			var errs []error
			for _, name := range names {
				r, ok := resps[name]
				switch {
				case !ok:
					errs = append(errs, fmt.Errorf("add partitions to %q: the broker did not answer for it", name))
				case r.Err != nil:
					err := clientcmd.KafkaErr(name, r.Err, r.ErrMessage)
					var unknown *clientcmd.UnknownTopicError
					if !errors.As(err, &unknown) {
						err = fmt.Errorf("add partitions to %q: %w", name, err)
					}
					errs = append(errs, err)
				default:
					before := len(tds[name].Partitions)
					res.Topics = append(res.Topics, addedPartitions{Name: name, Before: before, After: before + num})
				}
			}
			if len(res.Topics) > 0 {
				if err := f.Print(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().IntVarP(&num, "num", "n", 0, "number of partitions to add to each topic")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only ask the broker to validate the request")
	return cmd
}

type addedPartitions struct {
	Name   string `json:"name"`
	Before int    `json:"partitions_before"`
	After  int    `json:"partitions"`
}

type addResult struct {
	DryRun bool              `json:"dry_run"`
	Topics []addedPartitions `json:"topics"`
}

func (r addResult) WriteText(w io.Writer) error {
	status := "added"
	if r.DryRun {
		status = "valid (dry run, not added)"
	}
	t := clientcmd.NewTable(w, "TOPIC", "PARTITIONS-BEFORE", "PARTITIONS", "STATUS")
	for _, tp := range r.Topics {
		t.Row(tp.Name, tp.Before, tp.After, status)
	}
	return t.Flush()
}
