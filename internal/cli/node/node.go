// Package node is `weir node`: administration of the nodes of a cluster
// through a node's HTTP admin listener.
package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// New returns the node command and its verbs.
func New(lookupEnv func(string) (string, bool)) *cobra.Command {
	var admin string
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Administer the nodes of a cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	def := "http://127.0.0.1:9644"
	if v, ok := lookupEnv("WEIR_ADMIN_URL"); ok && v != "" {
		def = v
	}
	cmd.PersistentFlags().StringVar(&admin, "admin-url", def, "HTTP admin address of any node of the cluster (or $WEIR_ADMIN_URL)")
	cmd.AddCommand(&cobra.Command{
		Use:   "decommission NODE-ID",
		Short: "Drain a node: its replicas move to the other nodes",
		Long: `Drain a node: the controller moves each of its replicas to another live node
(a new replica catches up, then replaces it by joint consensus). Watch the
progress with 'weir cluster info': the node's REPLICAS count falls to 0.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 32)
			if err != nil || id <= 0 {
				return fmt.Errorf("node id %q is not a positive integer", args[0])
			}
			return decommission(cmd.OutOrStdout(), admin, int32(id))
		},
	})
	return cmd
}

func decommission(out io.Writer, admin string, id int32) error {
	url := strings.TrimRight(admin, "/") + fmt.Sprintf("/v1/nodes/%d/decommission", id)
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Post(url, "application/json", nil)
	if err != nil {
		return fmt.Errorf("decommission node %d: %w", id, err)
	}
	defer resp.Body.Close()
	var body map[string]string
	json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body)
	if resp.StatusCode != http.StatusOK {
		msg := body["error"]
		if msg == "" {
			msg = resp.Status
		}
		return fmt.Errorf("decommission node %d: %s", id, msg)
	}
	fmt.Fprintf(out, "node %d is draining; its replicas are moving to other nodes\n", id)
	return nil
}
