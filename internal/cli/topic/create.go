package topic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

type createOptions struct {
	partitions     int32
	replicas       int16
	configs        []string
	retention      string
	retentionBytes int64
	segmentBytes   int64
	cleanupPolicy  string
	dryRun         bool
}

// NewCreate returns `weir topic create`.
func NewCreate(p *clientcmd.Params, format *string) *cobra.Command {
	var o createOptions
	cmd := &cobra.Command{
		Use:   "create NAME...",
		Short: "Create topics",
		Long: `Create topics. Partitions and replicas default to the broker's settings.
Topic configs are given with -c name=value; the shortcut flags set the
usual ones (--retention 7d sets retention.ms=604800000).`,
		Args: clientcmd.MinArgs(1, "one or more topic NAMEs"),
		RunE: func(cmd *cobra.Command, names []string) error {
			f, err := clientcmd.ParseFormat(*format)
			if err != nil {
				return err
			}
			if err := uniqueNames(names); err != nil {
				return err
			}
			configs, err := o.topicConfigs(cmd)
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
			create, partitions := adm.CreateTopics, o.partitions
			if o.dryRun {
				create = adm.ValidateCreateTopics
				if partitions == -1 {
					partitions = brokerDefaultPartitions(ctx, adm)
				}
			}
			resps, err := create(ctx, partitions, o.replicas, configs, names...)
			if err != nil {
				return fmt.Errorf("create topics: %w", err)
			}
			res := createResult{DryRun: o.dryRun, Topics: []createdTopic{}}
			var errs []error
			for _, name := range names {
				r, ok := resps[name]
				if !ok {
					errs = append(errs, fmt.Errorf("create topic %q: the broker did not answer for it", name))
					continue
				}
				if r.Err != nil {
					errs = append(errs, fmt.Errorf("create topic %q: %w", name, clientcmd.KafkaErr("", r.Err, r.ErrMessage)))
					continue
				}
				t := createdTopic{Name: name, Partitions: r.NumPartitions, Replicas: r.ReplicationFactor}
				if t.Partitions <= 0 {
					t.Partitions = partitions
				}
				if t.Replicas <= 0 {
					t.Replicas = o.replicas
				}
				res.Topics = append(res.Topics, t)
			}
			if len(res.Topics) > 0 {
				if err := f.Print(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			}
			return errors.Join(errs...)
		},
	}
	fs := cmd.Flags()
	fs.Int32VarP(&o.partitions, "partitions", "p", -1, "number of partitions (default: the broker's default-partitions)")
	fs.Int16VarP(&o.replicas, "replicas", "r", -1, "replication factor (default: the broker's)")
	fs.StringArrayVarP(&o.configs, "config", "c", nil, "topic config name=value (repeatable)")
	fs.StringVar(&o.retention, "retention", "", "retention.ms as a duration (30s, 12h, 7d) or -1 to keep forever")
	fs.Int64Var(&o.retentionBytes, "retention-bytes", 0, "retention.bytes: size a partition may grow to before old segments are deleted, -1 for no limit")
	fs.Int64Var(&o.segmentBytes, "segment-bytes", 0, "segment.bytes: size of one log segment file")
	fs.StringVar(&o.cleanupPolicy, "cleanup-policy", "", "cleanup.policy: delete, compact or compact,delete")
	fs.BoolVar(&o.dryRun, "dry-run", false, "only ask the broker to validate the request")
	return cmd
}

// brokerDefaultPartitions reads the broker's num.partitions, or returns -1
// (let the broker decide) if it cannot. A validate-only CreateTopics with -1
// partitions crashes the current Weir broker (see the report on
// handleCreateTopics); asking for the default explicitly avoids that and
// also shows the real count in the dry run's output.
func brokerDefaultPartitions(ctx context.Context, adm *kadm.Client) int32 {
	rcs, err := adm.DescribeBrokerConfigs(ctx)
	if err != nil {
		return -1
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key != "num.partitions" || c.Value == nil {
				continue
			}
			if n, err := strconv.ParseInt(*c.Value, 10, 32); err == nil && n > 0 {
				return int32(n)
			}
		}
	}
	return -1
}

// topicConfigs merges -c values with the shortcut flags; setting the same
// config twice is an error rather than a silent override.
func (o *createOptions) topicConfigs(cmd *cobra.Command) (map[string]*string, error) {
	out := map[string]*string{}
	kvs, err := clientcmd.ParseKVs("--config", o.configs)
	if err != nil {
		return nil, err
	}
	for _, kv := range kvs {
		if _, dup := out[kv.Key]; dup {
			return nil, fmt.Errorf("config %s is given more than once", kv.Key)
		}
		out[kv.Key] = kadm.StringPtr(kv.Value)
	}
	set := func(flag, name, value string) error {
		if _, dup := out[name]; dup {
			return fmt.Errorf("config %s is given both with --%s and --config", name, flag)
		}
		out[name] = kadm.StringPtr(value)
		return nil
	}
	fs := cmd.Flags()
	if fs.Changed("retention") {
		ms, err := ParseRetention(o.retention)
		if err != nil {
			return nil, err
		}
		if err := set("retention", "retention.ms", strconv.FormatInt(ms, 10)); err != nil {
			return nil, err
		}
	}
	if fs.Changed("retention-bytes") {
		if err := set("retention-bytes", "retention.bytes", strconv.FormatInt(o.retentionBytes, 10)); err != nil {
			return nil, err
		}
	}
	if fs.Changed("segment-bytes") {
		if err := set("segment-bytes", "segment.bytes", strconv.FormatInt(o.segmentBytes, 10)); err != nil {
			return nil, err
		}
	}
	if fs.Changed("cleanup-policy") {
		policy, err := parseCleanupPolicy(o.cleanupPolicy)
		if err != nil {
			return nil, err
		}
		if err := set("cleanup-policy", "cleanup.policy", policy); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ParseRetention turns a --retention value into retention.ms: -1 (keep
// forever) or a positive duration. Go durations lack days, the unit
// retention is usually thought in, so "7d" is accepted too.
func ParseRetention(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "-1" {
		return -1, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > int64(time.Duration(1<<63-1)/(24*time.Hour)) {
			return 0, fmt.Errorf("--retention %q is not a duration (like 30m, 12h, 7d) or -1", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("--retention %q is not a duration (like 30m, 12h, 7d) or -1", s)
		}
	}
	if d < 0 {
		return 0, fmt.Errorf("--retention %q is negative; use -1 to keep records forever", s)
	}
	if d%time.Millisecond != 0 {
		return 0, fmt.Errorf("--retention %q is not a whole number of milliseconds", s)
	}
	return d.Milliseconds(), nil
}

func parseCleanupPolicy(s string) (string, error) {
	switch s {
	case "delete", "compact":
		return s, nil
	case "compact,delete", "delete,compact":
		return "compact,delete", nil
	}
	return "", fmt.Errorf("--cleanup-policy must be delete, compact or compact,delete, not %q", s)
}

type createdTopic struct {
	Name       string `json:"name"`
	Partitions int32  `json:"partitions"`
	Replicas   int16  `json:"replicas"`
}

type createResult struct {
	DryRun bool           `json:"dry_run"`
	Topics []createdTopic `json:"topics"`
}

func (r createResult) WriteText(w io.Writer) error {
	status := "created"
	if r.DryRun {
		status = "valid (dry run, not created)"
	}
	t := clientcmd.NewTable(w, "TOPIC", "PARTITIONS", "REPLICAS", "STATUS")
	for _, tp := range r.Topics {
		t.Row(tp.Name, orDefault(int64(tp.Partitions)), orDefault(int64(tp.Replicas)), status)
	}
	return t.Flush()
}

// orDefault prints -1 (left to the broker, and not reported back by older
// protocol versions) as "default".
func orDefault(n int64) string {
	if n < 0 {
		return "default"
	}
	return strconv.FormatInt(n, 10)
}
