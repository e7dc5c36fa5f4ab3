package cluster

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

func TestInfoView(t *testing.T) {
	rack := "r1"
	in := buildInfo(kadm.Metadata{
		Cluster:    "c-1",
		Controller: 1,
		Brokers:    kadm.BrokerDetails{{NodeID: 0, Host: "10.0.0.1", Port: 9092}, {NodeID: 1, Host: "::1", Port: 9093, Rack: &rack}},
		Topics: kadm.TopicDetails{
			"a":      {Topic: "a", Partitions: kadm.PartitionDetails{0: {}, 1: {}}},
			"_inner": {Topic: "_inner", IsInternal: true, Partitions: kadm.PartitionDetails{0: {}}},
		},
	})
	var text, js bytes.Buffer
	if err := clientcmd.Text.Print(&text, in); err != nil {
		t.Fatal(err)
	}
	if err := clientcmd.JSON.Print(&js, in); err != nil {
		t.Fatal(err)
	}
	wantText := "CLUSTER          c-1\nCONTROLLER       1\nTOPICS           1\nINTERNAL TOPICS  1\nPARTITIONS       2\n\n" +
		"BROKER  ADDRESS        RACK\n0       10.0.0.1:9092  -\n1*      [::1]:9093     r1\n"
	if text.String() != wantText {
		t.Errorf("text:\n%s\nwant:\n%s", text.String(), wantText)
	}
	wantJSON := `{"cluster_id":"c-1","controller":1,"brokers":[{"id":0,"host":"10.0.0.1","port":9092,"address":"10.0.0.1:9092"},{"id":1,"host":"::1","port":9093,"address":"[::1]:9093","rack":"r1"}],"topics":1,"internal_topics":1,"partitions":2}` + "\n"
	if js.String() != wantJSON {
		t.Errorf("json:\n%s\nwant:\n%s", js.String(), wantJSON)
	}
}
