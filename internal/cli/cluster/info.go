package cluster

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// NewInfo returns `weir cluster info`.
func NewInfo(p *clientcmd.Params, format *string) *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show the cluster id, controller, brokers and topic counts",
		Args:  cobra.NoArgs,
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
			m, err := adm.Metadata(ctx)
			if err != nil {
				return fmt.Errorf("cluster metadata: %w", err)
			}
			return f.Print(cmd.OutOrStdout(), buildInfo(m))
		},
	}
}

func buildInfo(m kadm.Metadata) info {
	in := info{ClusterID: m.Cluster, Controller: m.Controller, Brokers: []brokerInfo{}, UnderReplicated: []string{}, Leaderless: []string{}}
	byID := map[int32]*brokerInfo{}
	for _, b := range m.Brokers {
		in.Brokers = append(in.Brokers, brokerInfo{
			ID:      b.NodeID,
			Host:    b.Host,
			Port:    b.Port,
			Address: net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))),
			Rack:    b.Rack,
		})
	}
	for i := range in.Brokers {
		byID[in.Brokers[i].ID] = &in.Brokers[i]
	}
	for _, name := range m.Topics.Names() {
		td := m.Topics[name]
		if td.IsInternal {
			in.InternalTopics++
		} else {
			in.Topics++
			in.Partitions += len(td.Partitions)
		}
		for _, p := range td.Partitions.Sorted() {
			id := fmt.Sprintf("%s-%d", name, p.Partition)
			if b := byID[p.Leader]; b != nil {
				b.Leaders++
			}
			if p.Leader < 0 {
				in.Leaderless = append(in.Leaderless, id)
			}
			for _, r := range p.Replicas {
				if b := byID[r]; b != nil {
					b.Replicas++
				}
			}
			if len(p.ISR) < len(p.Replicas) {
				in.UnderReplicated = append(in.UnderReplicated, id)
			}
		}
	}
	return in
}

type brokerInfo struct {
	ID      int32   `json:"id"`
	Host    string  `json:"host"`
	Port    int32   `json:"port"`
	Address string  `json:"address"`
	Rack    *string `json:"rack,omitempty"`
	// Partitions (internal ones included) this broker leads and holds.
	Leaders  int `json:"leaders"`
	Replicas int `json:"replicas"`
}

type info struct {
	ClusterID      string       `json:"cluster_id"`
	Controller     int32        `json:"controller"`
	Brokers        []brokerInfo `json:"brokers"`
	Topics         int          `json:"topics"`
	InternalTopics int          `json:"internal_topics"`
	Partitions     int          `json:"partitions"` // of user topics
	// Partitions with fewer in-sync replicas than replicas, and without a
	// leader.
	UnderReplicated []string `json:"under_replicated"`
	Leaderless      []string `json:"leaderless"`
}

func (in info) WriteText(w io.Writer) error {
	t := clientcmd.NewTable(w)
	t.Row("CLUSTER", in.ClusterID)
	t.Row("CONTROLLER", in.Controller)
	t.Row("TOPICS", in.Topics)
	if in.InternalTopics > 0 {
		t.Row("INTERNAL TOPICS", in.InternalTopics)
	}
	t.Row("PARTITIONS", in.Partitions)
	t.Row("UNDER-REPLICATED", listOrNone(in.UnderReplicated))
	t.Row("WITHOUT LEADER", listOrNone(in.Leaderless))
	if err := t.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = clientcmd.NewTable(w, "BROKER", "ADDRESS", "RACK", "LEADERS", "REPLICAS")
	for _, b := range in.Brokers {
		id := strconv.Itoa(int(b.ID))
		if b.ID == in.Controller {
			// Marked the way rpk and kcat mark the controller.
			id += "*"
		}
		rack := "-"
		if b.Rack != nil {
			rack = *b.Rack
		}
		t.Row(id, b.Address, rack, b.Leaders, b.Replicas)
	}
	return t.Flush()
}

// listOrNone shows a few names, and how many more there are.
func listOrNone(names []string) string {
	switch {
	case len(names) == 0:
		return "none"
	case len(names) <= 5:
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:5], ", "), len(names)-5)
}
