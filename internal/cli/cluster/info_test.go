package cluster_test

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/cli/clitest"
	"github.com/weir-dev/weir/internal/server/servertest"
)

type info struct {
	ClusterID  string `json:"cluster_id"`
	Controller int32  `json:"controller"`
	Brokers    []struct {
		ID      int32  `json:"id"`
		Host    string `json:"host"`
		Port    int32  `json:"port"`
		Address string `json:"address"`
	} `json:"brokers"`
	Topics     int `json:"topics"`
	Partitions int `json:"partitions"`
}

func TestInfo(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	clitest.MustRun(t, "", "topic", "create", "a", "-p", "3", b)
	clitest.MustRun(t, "", "topic", "create", "b", "-p", "2", b)

	cl, err := kgo.NewClient(kgo.SeedBrokers(n.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	meta, err := kadm.NewClient(cl).BrokerMetadata(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	r := clitest.MustRun(t, "", "cluster", "info", "--format", "json", b)
	var got info
	if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
		t.Fatalf("decode %q: %v", r.Stdout, err)
	}
	host, port, _ := net.SplitHostPort(n.Addr())
	portN, _ := strconv.Atoi(port)
	if got.ClusterID == "" || got.ClusterID != meta.Cluster || got.Controller != 0 || got.Topics != 2 || got.Partitions != 5 ||
		len(got.Brokers) != 1 || got.Brokers[0].Address != n.Addr() || got.Brokers[0].Host != host || int(got.Brokers[0].Port) != portN {
		t.Errorf("cluster info json: %+v", got)
	}

	r = clitest.MustRun(t, "", "cluster", "info", b)
	want := fmt.Sprintf("CLUSTER     %s\nCONTROLLER  0\nTOPICS      2\nPARTITIONS  5\nUNDER-REPLICATED  none\nWITHOUT LEADER  none\n\nBROKER  ADDRESS  RACK  LEADERS  REPLICAS\n0*      %s  -  5  5\n", meta.Cluster, n.Addr())
	// The address column's width depends on the port; compare without
	// padding.
	if squash(r.Stdout) != squash(want) {
		t.Errorf("cluster info text:\n%s\nwant:\n%s", r.Stdout, want)
	}
}

func squash(s string) string {
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' && len(out) > 0 && out[len(out)-1] == ' ' {
			continue
		}
		out = append(out, s[i])
	}
	return string(out)
}
