package topic

import (
	"encoding/base64"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// NewDescribe returns `weir topic describe`.
func NewDescribe(p *clientcmd.Params, format *string) *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a topic's partitions, offsets and configs",
		Long: `Show a topic's partitions (leader, replicas, log start offset, high
watermark) and every topic config with its source: "topic" if it was set on
the topic, "broker" if it comes from the broker's topic-defaults, "default" if
it is the built-in value.`,
		Args: clientcmd.ExactArgs(1, "one topic NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := clientcmd.ParseFormat(*format)
			if err != nil {
				return err
			}
			name := args[0]
			adm, err := p.Admin(cmd.Context())
			if err != nil {
				return err
			}
			defer adm.Close()
			ctx, cancel := p.RequestContext(cmd.Context())
			defer cancel()
			tds, err := adm.ListTopics(ctx, name)
			if err != nil {
				return fmt.Errorf("describe topic %q: %w", name, err)
			}
			td := tds[name]
			if err := clientcmd.KafkaErr(name, td.Err, ""); err != nil {
				return err
			}
			starts, err := adm.ListStartOffsets(ctx, name)
			if err != nil {
				return fmt.Errorf("list start offsets of %q: %w", name, err)
			}
			ends, err := adm.ListEndOffsets(ctx, name)
			if err != nil {
				return fmt.Errorf("list end offsets of %q: %w", name, err)
			}
			rcs, err := adm.DescribeTopicConfigs(ctx, name)
			if err != nil {
				return fmt.Errorf("describe configs of %q: %w", name, err)
			}
			rc, err := rcs.On(name, nil)
			if err == nil {
				err = clientcmd.KafkaErr(name, rc.Err, rc.ErrMessage)
			}
			if err != nil {
				return fmt.Errorf("describe configs of %q: %w", name, err)
			}
			d, err := buildDescription(td, starts, ends, rc)
			if err != nil {
				return err
			}
			return f.Print(cmd.OutOrStdout(), d)
		},
	}
}

func buildDescription(td kadm.TopicDetail, starts, ends kadm.ListedOffsets, rc kadm.ResourceConfig) (description, error) {
	d := description{Name: td.Topic, Replicas: td.Partitions.NumReplicas(), Partitions: []partitionInfo{}, Configs: []configInfo{}}
	if td.ID != (kadm.TopicID{}) {
		// Kafka's own tools print topic IDs this way.
		d.ID = base64.RawURLEncoding.EncodeToString(td.ID[:])
	}
	for _, pd := range td.Partitions.Sorted() {
		if pd.Err != nil {
			return d, fmt.Errorf("topic %q partition %d: %w", td.Topic, pd.Partition, pd.Err)
		}
		pi := partitionInfo{Partition: pd.Partition, Leader: pd.Leader, Replicas: append([]int32{}, pd.Replicas...)}
		for _, l := range []struct {
			offsets kadm.ListedOffsets
			dst     *int64
			what    string
		}{{starts, &pi.LogStartOffset, "log start offset"}, {ends, &pi.HighWatermark, "high watermark"}} {
			o, ok := l.offsets.Lookup(td.Topic, pd.Partition)
			if !ok {
				return d, fmt.Errorf("topic %q partition %d: no %s in the broker's answer", td.Topic, pd.Partition, l.what)
			}
			if o.Err != nil {
				return d, fmt.Errorf("topic %q partition %d: list %s: %w", td.Topic, pd.Partition, l.what, o.Err)
			}
			*l.dst = o.Offset
		}
		d.Partitions = append(d.Partitions, pi)
	}
	for _, c := range rc.Configs {
		ci := configInfo{Name: c.Key, Value: c.Value, Source: sourceName(c.Source), Sensitive: c.Sensitive}
		d.Configs = append(d.Configs, ci)
	}
	sort.Slice(d.Configs, func(i, j int) bool { return d.Configs[i].Name < d.Configs[j].Name })
	return d, nil
}

// sourceName names Kafka's config sources for people: where would I go to
// change this value?
func sourceName(s kmsg.ConfigSource) string {
	switch s {
	case kmsg.ConfigSourceDynamicTopicConfig:
		return "topic"
	case kmsg.ConfigSourceDynamicBrokerConfig:
		return "broker (dynamic)"
	case kmsg.ConfigSourceDynamicDefaultBrokerConfig:
		return "cluster (dynamic)"
	case kmsg.ConfigSourceStaticBrokerConfig:
		return "broker"
	case kmsg.ConfigSourceDefaultConfig:
		return "default"
	}
	return strings.ToLower(s.String())
}

type partitionInfo struct {
	Partition      int32   `json:"partition"`
	Leader         int32   `json:"leader"`
	Replicas       []int32 `json:"replicas"`
	LogStartOffset int64   `json:"log_start_offset"`
	HighWatermark  int64   `json:"high_watermark"`
}

type configInfo struct {
	Name      string  `json:"name"`
	Value     *string `json:"value"`
	Source    string  `json:"source"`
	Sensitive bool    `json:"sensitive,omitempty"`
}

type description struct {
	Name       string          `json:"name"`
	ID         string          `json:"id,omitempty"`
	Replicas   int             `json:"replicas"`
	Partitions []partitionInfo `json:"partitions"`
	Configs    []configInfo    `json:"configs"`
}

func (d description) WriteText(w io.Writer) error {
	t := clientcmd.NewTable(w)
	t.Row("NAME", d.Name)
	if d.ID != "" {
		t.Row("ID", d.ID)
	}
	t.Row("PARTITIONS", len(d.Partitions))
	t.Row("REPLICAS", d.Replicas)
	if err := t.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = clientcmd.NewTable(w, "PARTITION", "LEADER", "REPLICAS", "LOG-START-OFFSET", "HIGH-WATERMARK")
	for _, p := range d.Partitions {
		t.Row(p.Partition, p.Leader, int32List(p.Replicas), p.LogStartOffset, p.HighWatermark)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = clientcmd.NewTable(w, "CONFIG", "VALUE", "SOURCE")
	for _, c := range d.Configs {
		v := "-"
		switch {
		case c.Sensitive:
			v = "(sensitive)"
		case c.Value != nil:
			v = *c.Value
		}
		t.Row(c.Name, v, c.Source)
	}
	return t.Flush()
}

func int32List(ns []int32) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = fmt.Sprint(n)
	}
	return "[" + strings.Join(parts, ",") + "]"
}
