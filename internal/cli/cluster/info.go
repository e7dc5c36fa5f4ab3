package cluster

import (
	"fmt"
	"io"
	"net"
	"strconv"

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
	in := info{ClusterID: m.Cluster, Controller: m.Controller, Brokers: []brokerInfo{}}
	for _, b := range m.Brokers {
		in.Brokers = append(in.Brokers, brokerInfo{
			ID:      b.NodeID,
			Host:    b.Host,
			Port:    b.Port,
			Address: net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))),
			Rack:    b.Rack,
		})
	}
	for _, td := range m.Topics {
		if td.IsInternal {
			in.InternalTopics++
			continue
		}
		in.Topics++
		in.Partitions += len(td.Partitions)
	}
	return in
}

type brokerInfo struct {
	ID      int32   `json:"id"`
	Host    string  `json:"host"`
	Port    int32   `json:"port"`
	Address string  `json:"address"`
	Rack    *string `json:"rack,omitempty"`
}

type info struct {
	ClusterID      string       `json:"cluster_id"`
	Controller     int32        `json:"controller"`
	Brokers        []brokerInfo `json:"brokers"`
	Topics         int          `json:"topics"`
	InternalTopics int          `json:"internal_topics"`
	Partitions     int          `json:"partitions"` // of user topics
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
	if err := t.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = clientcmd.NewTable(w, "BROKER", "ADDRESS", "RACK")
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
		t.Row(id, b.Address, rack)
	}
	return t.Flush()
}
