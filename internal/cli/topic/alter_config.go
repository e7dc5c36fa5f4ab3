package topic

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// NewAlterConfig returns `weir topic alter-config`.
func NewAlterConfig(p *clientcmd.Params, format *string) *cobra.Command {
	var (
		sets, deletes []string
		dryRun        bool
	)
	cmd := &cobra.Command{
		Use:   "alter-config NAME --set name=value... --delete name...",
		Short: "Set or remove topic configs",
		Long: `Set or remove topic configs. Only the named configs change; a removed config
goes back to the broker's default. The change is atomic: if any config is
invalid, none is applied.`,
		Args: clientcmd.ExactArgs(1, "one topic NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := clientcmd.ParseFormat(*format)
			if err != nil {
				return err
			}
			name := args[0]
			change, err := buildChange(name, sets, deletes, dryRun)
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
			alter := adm.AlterTopicConfigs
			if dryRun {
				alter = adm.ValidateAlterTopicConfigs
			}
			resps, err := alter(ctx, change.ops(), name)
			if err != nil {
				return fmt.Errorf("alter configs of %q: %w", name, err)
			}
			r, err := resps.On(name, nil)
			if err == nil {
				err = clientcmd.KafkaErr(name, r.Err, r.ErrMessage)
			}
			if err != nil {
				var unknown *clientcmd.UnknownTopicError
				if errors.As(err, &unknown) {
					return err
				}
				return fmt.Errorf("alter configs of %q: %w", name, err)
			}
			return f.Print(cmd.OutOrStdout(), change)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&sets, "set", nil, "config name=value to set (repeatable)")
	fs.StringArrayVar(&deletes, "delete", nil, "config name to remove from the topic (repeatable)")
	fs.BoolVar(&dryRun, "dry-run", false, "only ask the broker to validate the change")
	return cmd
}

func buildChange(topic string, sets, deletes []string, dryRun bool) (configChange, error) {
	c := configChange{Topic: topic, DryRun: dryRun, Set: []clientcmd.KV{}, Deleted: []string{}}
	if len(sets) == 0 && len(deletes) == 0 {
		return c, errors.New("nothing to change: give --set name=value or --delete name")
	}
	kvs, err := clientcmd.ParseKVs("--set", sets)
	if err != nil {
		return c, err
	}
	seen := map[string]bool{}
	for _, kv := range kvs {
		if seen[kv.Key] {
			return c, fmt.Errorf("config %s is given more than once", kv.Key)
		}
		seen[kv.Key] = true
		c.Set = append(c.Set, kv)
	}
	for _, d := range deletes {
		if seen[d] {
			return c, fmt.Errorf("config %s is given more than once", d)
		}
		seen[d] = true
		c.Deleted = append(c.Deleted, d)
	}
	return c, nil
}

type configChange struct {
	Topic   string         `json:"topic"`
	DryRun  bool           `json:"dry_run"`
	Set     []clientcmd.KV `json:"set"`
	Deleted []string       `json:"deleted"`
}

func (c configChange) ops() []kadm.AlterConfig {
	var ops []kadm.AlterConfig
	for _, kv := range c.Set {
		ops = append(ops, kadm.AlterConfig{Op: kadm.SetConfig, Name: kv.Key, Value: kadm.StringPtr(kv.Value)})
	}
	for _, d := range c.Deleted {
		ops = append(ops, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: d})
	}
	return ops
}

func (c configChange) WriteText(w io.Writer) error {
	status := "altered"
	if c.DryRun {
		status = "valid (dry run, not altered)"
	}
	fmt.Fprintf(w, "topic %s: %s\n", c.Topic, status)
	t := clientcmd.NewTable(w, "CONFIG", "CHANGE")
	for _, kv := range c.Set {
		t.Row(kv.Key, "set to "+kv.Value)
	}
	for _, d := range c.Deleted {
		t.Row(d, "removed (back to default)")
	}
	return t.Flush()
}
