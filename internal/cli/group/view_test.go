package group

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// The views are checked in both formats with fixed data; the end-to-end tests
// cover the same code against a broker.
func TestViews(t *testing.T) {
	i := func(n int64) *int64 { return &n }
	s := func(v string) *string { return &v }
	for _, tc := range []struct {
		name       string
		view       clientcmd.Texter
		text, json string
	}{
		{
			name: "list",
			view: groupList{{"a", "Stable", "consumer", 2}, {"bb", "Empty", "", 0}},
			text: "GROUP  STATE   PROTOCOL-TYPE  MEMBERS\na      Stable  consumer       2\nbb     Empty   -              0\n",
			json: `[{"group":"a","state":"Stable","protocol_type":"consumer","members":2},{"group":"bb","state":"Empty","protocol_type":"","members":0}]`,
		},
		{
			name: "empty list",
			view: groupList{},
			text: "GROUP  STATE  PROTOCOL-TYPE  MEMBERS\n",
			json: `[]`,
		},
		{
			name: "delete",
			view: deleteResult{Deleted: []string{"a", "b"}},
			text: "GROUP  STATUS\na      deleted\nb      deleted\n",
			json: `{"deleted":["a","b"]}`,
		},
		{
			name: "describe",
			view: descriptions{
				{
					Group: "g", State: "Stable", ProtocolType: "consumer", Protocol: "range", TotalLag: 5,
					Members: []memberInfo{
						{MemberID: "m1", ClientID: "c1", Host: "/10.0.0.1", Assigned: []assignedTopic{{"t", []int32{0, 1}}, {"u", []int32{2}}}},
						{MemberID: "m2", ClientID: "c2", Host: "/10.0.0.2", Assigned: []assignedTopic{}},
					},
					Offsets: []offsetInfo{
						{Topic: "t", Partition: 0, CommittedOffset: i(3), LogEndOffset: i(8), Lag: i(5), MemberID: s("m1")},
						{Topic: "t", Partition: 1, LogEndOffset: i(2), MemberID: s("m1")},
						{Topic: "v", Partition: 0, CommittedOffset: i(1)},
					},
				},
				{Group: "e", State: "Empty", Members: []memberInfo{}, Offsets: []offsetInfo{{Topic: "gone", Partition: 0, CommittedOffset: i(4), Error: `topic "gone" does not exist`}}},
			},
			text: "GROUP          g\nSTATE          Stable\nPROTOCOL-TYPE  consumer\nPROTOCOL       range\nMEMBERS        2\nTOTAL-LAG      5\n\n" +
				"MEMBER-ID  CLIENT-ID  HOST       ASSIGNED\nm1         c1         /10.0.0.1  t:0,1 u:2\nm2         c2         /10.0.0.2  -\n\n" +
				"TOPIC  PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  MEMBER-ID\nt      0          3               8               5    m1\nt      1          -               2               -    m1\nv      0          1               -               -    -\n" +
				"\n" +
				"GROUP          e\nSTATE          Empty\nPROTOCOL-TYPE  -\nPROTOCOL       -\nMEMBERS        0\nTOTAL-LAG      0\n\n" +
				"MEMBER-ID  CLIENT-ID  HOST  ASSIGNED\n\n" +
				"TOPIC  PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  MEMBER-ID  ERROR\ngone   0          4               -               -    -          topic \"gone\" does not exist\n",
			json: `[{"group":"g","state":"Stable","protocol_type":"consumer","protocol":"range","members":[{"member_id":"m1","client_id":"c1","host":"/10.0.0.1","assigned":[{"topic":"t","partitions":[0,1]},{"topic":"u","partitions":[2]}]},{"member_id":"m2","client_id":"c2","host":"/10.0.0.2","assigned":[]}],"total_lag":5,` +
				`"offsets":[{"topic":"t","partition":0,"committed_offset":3,"log_end_offset":8,"lag":5,"member_id":"m1"},{"topic":"t","partition":1,"committed_offset":null,"log_end_offset":2,"lag":null,"member_id":"m1"},{"topic":"v","partition":0,"committed_offset":1,"log_end_offset":null,"lag":null,"member_id":null}]},` +
				`{"group":"e","state":"Empty","protocol_type":"","protocol":"","members":[],"total_lag":0,"offsets":[{"topic":"gone","partition":0,"committed_offset":4,"log_end_offset":null,"lag":null,"member_id":null,"error":"topic \"gone\" does not exist"}]}]`,
		},
		{
			name: "reset dry run",
			view: resetResult{Group: "g", Offsets: []resetRow{{"t", 0, i(5), 0}, {"t", 1, nil, 0}}},
			text: "group g: dry run, nothing committed (add --execute to commit these offsets)\nTOPIC  PARTITION  CURRENT-OFFSET  NEW-OFFSET\nt      0          5               0\nt      1          -               0\n",
			json: `{"group":"g","executed":false,"offsets":[{"topic":"t","partition":0,"current_offset":5,"new_offset":0},{"topic":"t","partition":1,"current_offset":null,"new_offset":0}]}`,
		},
		{
			name: "reset executed",
			view: resetResult{Group: "g", Executed: true, Offsets: []resetRow{{"t", 0, i(5), 9}}},
			text: "group g: offsets committed\nTOPIC  PARTITION  CURRENT-OFFSET  NEW-OFFSET\nt      0          5               9\n",
			json: `{"group":"g","executed":true,"offsets":[{"topic":"t","partition":0,"current_offset":5,"new_offset":9}]}`,
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

func TestErrors(t *testing.T) {
	err := error(&ActiveError{Group: "g", What: "delete", State: "Stable", Members: 2, Code: kerr.NonEmptyGroup})
	if err.Error() != `delete group "g": NON_EMPTY_GROUP: it has 2 active members (state Stable); stop its consumers first` || !errors.Is(err, kerr.NonEmptyGroup) {
		t.Errorf("broker refusal: %v", err)
	}
	err = &ActiveError{Group: "g", What: "reset offsets of"}
	if err.Error() != `cannot reset offsets of group "g": it has active members; stop its consumers first` {
		t.Errorf("own refusal: %v", err)
	}
	err = groupErr("g", kerr.GroupIDNotFound, "")
	if err.Error() != `group "g" does not exist` || !errors.Is(err, kerr.GroupIDNotFound) {
		t.Errorf("not found: %v", err)
	}
	if !errors.Is(commitErr("g", kerr.UnknownMemberID), kerr.NonEmptyGroup) {
		t.Error("a commit refused for members is not reported as an active group")
	}
}

func TestParseTopicPartitions(t *testing.T) {
	for in, want := range map[string]string{"t": "t []", "t:1": "t [1]", "t:2,0,2": "t [2 0]", "a.b-c_d:0": "a.b-c_d [0]"} {
		topic, parts, err := parseTopicPartitions(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if got := topic + " " + fmtInts(parts); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
	for _, bad := range []string{"", ":0", "t:", "t:a", "t:-1", "t:1,,2", "t:99999999999"} {
		if _, _, err := parseTopicPartitions(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	o := resetOptions{topics: []string{"t:1", "u", "t:0,1", "u:3"}}
	sel, err := o.selection()
	if err != nil || fmtInts(sel["t"]) != "[1 0]" || sel["u"] != nil || len(sel) != 2 {
		t.Errorf("merged selection: %v, %v", sel, err)
	}
}

func fmtInts(ps []int32) string {
	if ps == nil {
		return "[]"
	}
	return fmt.Sprint(ps)
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1714564800000": 1714564800000, "2024-05-01T12:00:00Z": 1714564800000, "2024-05-01T14:00:00.5+02:00": 1714564800500} {
		if got, err := parseTime(in); err != nil || got != want {
			t.Errorf("parseTime(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "now", "2024-05-01", "1969-12-31T23:59:59Z"} {
		if _, err := parseTime(bad); err == nil {
			t.Errorf("parseTime(%q) succeeded", bad)
		}
	}
}
