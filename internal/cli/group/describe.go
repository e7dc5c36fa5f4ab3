package group

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// NewDescribe returns `weir group describe`.
func NewDescribe(p *clientcmd.Params, format *string) *cobra.Command {
	return &cobra.Command{
		Use:   "describe GROUP...",
		Short: "Show a group's members, committed offsets and lag",
		Long: `Show a group's state, its members (client id, host and assigned partitions)
and, for every partition it is assigned or has committed offsets for, the
committed offset, the log end offset (high watermark), the lag between them
and the member that owns the partition.

As in Kafka's kafka-consumer-groups --describe, the lag of a partition
without a committed offset is unknown ("-" in text, null in JSON).`,
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
			lags, err := adm.Lag(ctx, names...)
			if err != nil {
				return fmt.Errorf("describe groups: %w", err)
			}
			ds := descriptions{}
			var errs []error
			for _, name := range names {
				l, ok := lags[name]
				switch {
				case !ok:
					errs = append(errs, fmt.Errorf("describe group %q: the broker did not answer for it", name))
				case l.DescribeErr != nil:
					errs = append(errs, describeErr(name, groupErr(name, l.DescribeErr, "")))
				case l.FetchErr != nil:
					errs = append(errs, fmt.Errorf("fetch offsets of group %q: %w", name, groupErr(name, l.FetchErr, "")))
				default:
					d := buildDescription(l)
					if d.State == "Dead" && len(d.Members) == 0 && len(d.Offsets) == 0 {
						errs = append(errs, &NotFoundError{Group: name})
						continue
					}
					ds = append(ds, d)
				}
			}
			if len(ds) > 0 {
				if err := f.Print(cmd.OutOrStdout(), ds); err != nil {
					return err
				}
			}
			return errors.Join(errs...)
		},
	}
}

func describeErr(name string, err error) error {
	var nf *NotFoundError
	if errors.As(err, &nf) {
		return err
	}
	return fmt.Errorf("describe group %q: %w", name, err)
}

func buildDescription(l kadm.DescribedGroupLag) description {
	d := description{
		Group:        l.Group,
		State:        l.State,
		ProtocolType: l.ProtocolType,
		Protocol:     l.Protocol,
		Members:      []memberInfo{},
		Offsets:      []offsetInfo{},
	}
	for _, m := range l.Members {
		mi := memberInfo{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, Host: m.ClientHost, Assigned: []assignedTopic{}}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				mi.Assigned = append(mi.Assigned, assignedTopic{Topic: t.Topic, Partitions: sortedPartitions(t.Partitions)})
			}
			sort.Slice(mi.Assigned, func(i, j int) bool { return mi.Assigned[i].Topic < mi.Assigned[j].Topic })
		}
		d.Members = append(d.Members, mi)
	}
	for _, ml := range l.Lag.Sorted() {
		oi := offsetInfo{Topic: ml.Topic, Partition: ml.Partition}
		if ml.Member != nil {
			id := ml.Member.MemberID
			oi.MemberID = &id
		}
		if ml.Commit.At >= 0 {
			at := ml.Commit.At
			oi.CommittedOffset = &at
		}
		if ml.End.Err == nil {
			end := ml.End.Offset
			oi.LogEndOffset = &end
		}
		switch {
		case ml.Err != nil:
			oi.Error = clientcmd.KafkaErr(ml.Topic, ml.Err, "").Error()
		case oi.CommittedOffset != nil && oi.LogEndOffset != nil:
			lag := max(*oi.LogEndOffset-*oi.CommittedOffset, 0)
			oi.Lag = &lag
			d.TotalLag += lag
		}
		d.Offsets = append(d.Offsets, oi)
	}
	return d
}

func sortedPartitions(ps []int32) []int32 {
	out := append([]int32{}, ps...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

type assignedTopic struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
}

type memberInfo struct {
	MemberID   string          `json:"member_id"`
	InstanceID *string         `json:"instance_id,omitempty"`
	ClientID   string          `json:"client_id"`
	Host       string          `json:"host"`
	Assigned   []assignedTopic `json:"assigned"`
}

// offsetInfo is one partition of a group. Unknown values are null: no
// committed offset, no log end offset (the topic is gone), and so no lag.
type offsetInfo struct {
	Topic           string  `json:"topic"`
	Partition       int32   `json:"partition"`
	CommittedOffset *int64  `json:"committed_offset"`
	LogEndOffset    *int64  `json:"log_end_offset"`
	Lag             *int64  `json:"lag"`
	MemberID        *string `json:"member_id"`
	Error           string  `json:"error,omitempty"`
}

type description struct {
	Group        string       `json:"group"`
	State        string       `json:"state"`
	ProtocolType string       `json:"protocol_type"`
	Protocol     string       `json:"protocol"`
	Members      []memberInfo `json:"members"`
	TotalLag     int64        `json:"total_lag"`
	Offsets      []offsetInfo `json:"offsets"`
}

// descriptions is one or more groups: a JSON array, or text blocks with a
// blank line between them.
type descriptions []description

func (ds descriptions) WriteText(w io.Writer) error {
	for i, d := range ds {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := d.WriteText(w); err != nil {
			return err
		}
	}
	return nil
}

func (d description) WriteText(w io.Writer) error {
	t := clientcmd.NewTable(w)
	t.Row("GROUP", d.Group)
	t.Row("STATE", d.State)
	t.Row("PROTOCOL-TYPE", dash(d.ProtocolType))
	t.Row("PROTOCOL", dash(d.Protocol))
	t.Row("MEMBERS", len(d.Members))
	t.Row("TOTAL-LAG", d.TotalLag)
	if err := t.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = clientcmd.NewTable(w, "MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNED")
	for _, m := range d.Members {
		var assigned []string
		for _, a := range m.Assigned {
			assigned = append(assigned, a.Topic+":"+partitionList(a.Partitions))
		}
		t.Row(m.MemberID, dash(m.ClientID), dash(m.Host), dash(strings.Join(assigned, " ")))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	headers := []string{"TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER-ID"}
	withErrors := false
	for _, o := range d.Offsets {
		withErrors = withErrors || o.Error != ""
	}
	if withErrors {
		headers = append(headers, "ERROR")
	}
	t = clientcmd.NewTable(w, headers...)
	for _, o := range d.Offsets {
		member := "-"
		if o.MemberID != nil {
			member = *o.MemberID
		}
		cells := []any{o.Topic, o.Partition, optInt(o.CommittedOffset), optInt(o.LogEndOffset), optInt(o.Lag), member}
		if withErrors {
			cells = append(cells, dash(o.Error))
		}
		t.Row(cells...)
	}
	return t.Flush()
}
