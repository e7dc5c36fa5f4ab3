package topic

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// The views are checked in both formats with fixed data; the end-to-end tests
// cover the same code against a broker.
func TestViews(t *testing.T) {
	v := func(s string) *string { return &s }
	for _, tc := range []struct {
		name       string
		view       clientcmd.Texter
		text, json string
	}{
		{
			name: "list",
			view: topicList{{"a", 3, 1}, {"bb", 12, 1}},
			text: "NAME  PARTITIONS  REPLICAS\na     3           1\nbb    12          1\n",
			json: `[{"name":"a","partitions":3,"replicas":1},{"name":"bb","partitions":12,"replicas":1}]`,
		},
		{
			name: "empty list",
			view: topicList{},
			text: "NAME  PARTITIONS  REPLICAS\n",
			json: `[]`,
		},
		{
			name: "create",
			view: createResult{Topics: []createdTopic{{"a", 3, 1}, {"b", -1, -1}}},
			text: "TOPIC  PARTITIONS  REPLICAS  STATUS\na      3           1         created\nb      default     default   created\n",
			json: `{"dry_run":false,"topics":[{"name":"a","partitions":3,"replicas":1},{"name":"b","partitions":-1,"replicas":-1}]}`,
		},
		{
			name: "delete",
			view: deleteResult{Deleted: []string{"a", "b"}},
			text: "TOPIC  STATUS\na      deleted\nb      deleted\n",
			json: `{"deleted":["a","b"]}`,
		},
		{
			name: "alter",
			view: configChange{Topic: "t", Set: []clientcmd.KV{{Key: "retention.ms", Value: "1"}}, Deleted: []string{"segment.ms"}},
			text: "topic t: altered\nCONFIG        CHANGE\nretention.ms  set to 1\nsegment.ms    removed (back to default)\n",
			json: `{"topic":"t","dry_run":false,"set":[{"key":"retention.ms","value":"1"}],"deleted":["segment.ms"]}`,
		},
		{
			name: "add partitions",
			view: addResult{DryRun: true, Topics: []addedPartitions{{"t", 1, 3}}},
			text: "TOPIC  PARTITIONS-BEFORE  PARTITIONS  STATUS\nt      1                  3           valid (dry run, not added)\n",
			json: `{"dry_run":true,"topics":[{"name":"t","partitions_before":1,"partitions":3}]}`,
		},
		{
			name: "describe",
			view: description{
				Name: "t", ID: "AAAAAAAAAAAAAAAAAAAAAQ", Replicas: 1,
				Partitions: []partitionInfo{{0, 0, []int32{0}, 5, 10}, {1, 0, []int32{0}, 0, 0}},
				Configs:    []configInfo{{Name: "retention.ms", Value: v("1000"), Source: "topic"}, {Name: "segment.ms", Value: v("604800000"), Source: "default"}, {Name: "secret", Source: "topic", Sensitive: true}},
			},
			text: "NAME        t\nID          AAAAAAAAAAAAAAAAAAAAAQ\nPARTITIONS  2\nREPLICAS    1\n\n" +
				"PARTITION  LEADER  REPLICAS  LOG-START-OFFSET  HIGH-WATERMARK\n0          0       [0]       5                 10\n1          0       [0]       0                 0\n\n" +
				"CONFIG        VALUE        SOURCE\nretention.ms  1000         topic\nsegment.ms    604800000    default\nsecret        (sensitive)  topic\n",
			json: `{"name":"t","id":"AAAAAAAAAAAAAAAAAAAAAQ","replicas":1,"partitions":[{"partition":0,"leader":0,"replicas":[0],"log_start_offset":5,"high_watermark":10},{"partition":1,"leader":0,"replicas":[0],"log_start_offset":0,"high_watermark":0}],"configs":[{"name":"retention.ms","value":"1000","source":"topic"},{"name":"segment.ms","value":"604800000","source":"default"},{"name":"secret","value":null,"source":"topic","sensitive":true}]}`,
		},
	} {
		var text, js bytes.Buffer
		if err := clientcmd.Text.Print(&text, tc.view); err != nil {
			t.Fatal(err)
		}
		if err := clientcmd.JSON.Print(&js, tc.view); err != nil {
			t.Fatal(err)
		}
		if text.String() != tc.text {
			t.Errorf("%s text:\n%s\nwant:\n%s", tc.name, text.String(), tc.text)
		}
		if js.String() != tc.json+"\n" {
			t.Errorf("%s json:\n%s\nwant:\n%s", tc.name, js.String(), tc.json)
		}
	}
}

func TestSourceName(t *testing.T) {
	for src, want := range map[int8]string{1: "topic", 4: "broker", 5: "default", 2: "broker (dynamic)", 3: "cluster (dynamic)"} {
		if got := sourceName(kmsg.ConfigSource(src)); got != want {
			t.Errorf("source %d: %q, want %q", src, got, want)
		}
	}
}

func TestParseRetention(t *testing.T) {
	for in, want := range map[string]int64{"-1": -1, "7d": 604800000, "1h30m": 5400000, "250ms": 250, "0s": 0, "0d": 0} {
		if got, err := ParseRetention(in); err != nil || got != want {
			t.Errorf("ParseRetention(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-2", "-1h", "forever", "1.5d", "d", "1us", "999999999999d"} {
		if got, err := ParseRetention(in); err == nil {
			t.Errorf("ParseRetention(%q) = %d, want an error", in, got)
		}
	}
}
