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
			"a": {Topic: "a", Partitions: kadm.PartitionDetails{
				0: {Partition: 0, Leader: 0, Replicas: []int32{0, 1}, ISR: []int32{0, 1}},
				1: {Partition: 1, Leader: 1, Replicas: []int32{1, 0}, ISR: []int32{1}},
			}},
			"_inner": {Topic: "_inner", IsInternal: true, Partitions: kadm.PartitionDetails{0: {Partition: 0, Leader: -1, Replicas: []int32{0}, ISR: []int32{0}}}},
		},
	})
	var text, js bytes.Buffer
	if err := clientcmd.Text.Print(&text, in); err != nil {
		t.Fatal(err)
	}
	if err := clientcmd.JSON.Print(&js, in); err != nil {
		t.Fatal(err)
	}
	wantText := "CLUSTER           c-1\nCONTROLLER        1\nTOPICS            1\nINTERNAL TOPICS   1\nPARTITIONS        2\n" +
		"UNDER-REPLICATED  a-1\nWITHOUT LEADER    _inner-0\n\n" +
		"BROKER  ADDRESS        RACK  LEADERS  REPLICAS\n0       10.0.0.1:9092  -     1        3\n1*      [::1]:9093     r1    1        2\n"
	if text.String() != wantText {
		t.Errorf("text:\n%s\nwant:\n%s", text.String(), wantText)
	}
	wantJSON := `{"cluster_id":"c-1","controller":1,"brokers":[{"id":0,"host":"10.0.0.1","port":9092,"address":"10.0.0.1:9092","leaders":1,"replicas":3},{"id":1,"host":"::1","port":9093,"address":"[::1]:9093","rack":"r1","leaders":1,"replicas":2}],"topics":1,"internal_topics":1,"partitions":2,"under_replicated":["a-1"],"leaderless":["_inner-0"]}` + "\n"
	if js.String() != wantJSON {
		t.Errorf("json:\n%s\nwant:\n%s", js.String(), wantJSON)
	}
}
