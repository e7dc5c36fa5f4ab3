package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/broker"
	"github.com/weir-dev/weir/internal/record"
)

type testServer struct {
	b    *broker.Broker
	s    *Server
	addr string
}

func startServer(t *testing.T, edit func(*Config)) *testServer { return startServerTB(t, edit) }

func startServerTB(t testing.TB, edit ...func(*Config)) *testServer {
	t.Helper()
	b, err := broker.Open(broker.Config{DataDir: t.TempDir(), AutoCreateTopics: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{AdvertisedHost: "127.0.0.1", AdvertisedPort: int32(ln.Addr().(*net.TCPAddr).Port)}
	for _, e := range edit {
		if e != nil {
			e(&cfg)
		}
	}
	s := New(cfg, b, nil, nil)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		b.Close()
	})
	return &testServer{b: b, s: s, addr: ln.Addr().String()}
}

// rawClient speaks the wire protocol by hand so tests can send anything.
type rawClient struct {
	t    *testing.T
	c    net.Conn
	r    *bufio.Reader
	f    *kmsg.RequestFormatter
	corr int32
}

func (ts *testServer) dial(t *testing.T) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawClient{t: t, c: c, r: bufio.NewReader(c), f: kmsg.NewRequestFormatter(kmsg.FormatterClientID("test"))}
}

func (rc *rawClient) send(req kmsg.Request) int32 {
	rc.t.Helper()
	rc.corr++
	if _, err := rc.c.Write(rc.f.AppendRequest(nil, req, rc.corr)); err != nil {
		rc.t.Fatal(err)
	}
	return rc.corr
}

func (rc *rawClient) sendRaw(frame []byte) {
	rc.t.Helper()
	if _, err := rc.c.Write(frame); err != nil {
		rc.t.Fatal(err)
	}
}

// recv reads one response into resp and returns its correlation id.
func (rc *rawClient) recv(resp kmsg.Response) int32 {
	rc.t.Helper()
	var size [4]byte
	if _, err := io.ReadFull(rc.r, size[:]); err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(rc.r, body); err != nil {
		rc.t.Fatalf("read response body: %v", err)
	}
	corr := int32(binary.BigEndian.Uint32(body))
	body = body[4:]
	if resp.IsFlexible() && resp.Key() != apiVersionsKey {
		body = body[1:] // empty header tags
	}
	if err := resp.ReadFrom(body); err != nil {
		rc.t.Fatalf("decode %T: %v", resp, err)
	}
	return corr
}

// roundTrip sends req at version v and decodes the response.
func roundTrip[R kmsg.Response](rc *rawClient, req kmsg.Request, v int16) R {
	rc.t.Helper()
	req.SetVersion(v)
	corr := rc.send(req)
	resp := req.ResponseKind()
	resp.SetVersion(v)
	if got := rc.recv(resp); got != corr {
		rc.t.Fatalf("correlation id %d, want %d", got, corr)
	}
	return resp.(R)
}

// expectClosed asserts the server closes the connection.
func (rc *rawClient) expectClosed() {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := rc.r.Read(b[:]); err == nil {
		rc.t.Fatal("connection still open, got data")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		rc.t.Fatal("connection still open after 10s")
	}
}

func TestAPIVersions(t *testing.T) {
	ts := startServer(t, nil)
	rc := ts.dial(t)
	for _, v := range []int16{0, 3, 4} {
		resp := roundTrip[*kmsg.ApiVersionsResponse](rc, kmsg.NewPtrApiVersionsRequest(), v)
		if resp.ErrorCode != 0 || len(resp.ApiKeys) != len(ts.s.apis.list) {
			t.Fatalf("v%d: error %d, %d keys", v, resp.ErrorCode, len(resp.ApiKeys))
		}
		for _, k := range resp.ApiKeys {
			a, ok := ts.s.apis.lookup(k.ApiKey, k.MaxVersion)
			if !ok || a.min != k.MinVersion {
				t.Fatalf("advertised %d v%d-%d is not implemented", k.ApiKey, k.MinVersion, k.MaxVersion)
			}
			if k.ApiKey >= 4 && k.ApiKey <= 7 {
				t.Fatalf("advertised inter-broker key %d", k.ApiKey)
			}
		}
	}
	// A version from the future gets a v0 answer with UNSUPPORTED_VERSION
	// and the list, on the same connection.
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(99)
	frame := appendRawRequest(apiVersionsKey, 99, 7, nil)
	rc.sendRaw(frame)
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	if corr := rc.recv(resp); corr != 7 || resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) == 0 {
		t.Fatalf("future ApiVersions: corr %d error %d keys %d", corr, resp.ErrorCode, len(resp.ApiKeys))
	}
	roundTrip[*kmsg.ApiVersionsResponse](rc, kmsg.NewPtrApiVersionsRequest(), 3)
}

// appendRawRequest frames a request header (non-flexible) and body by hand.
func appendRawRequest(key, version int16, corr int32, body []byte) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 0xffff) // null client id
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func TestBadFramesCloseTheConnection(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxRequestBytes = 4096 })
	cases := map[string][]byte{
		"oversized":         binary.BigEndian.AppendUint32(nil, 1<<20),
		"negative size":     binary.BigEndian.AppendUint32(nil, 0xffffffff),
		"unknown api key":   appendRawRequest(1000, 0, 1, nil),
		"unsupported ver":   appendRawRequest(0, 1, 1, nil), // Produce v1 predates record batches
		"truncated body":    appendRawRequest(3, 1, 1, []byte{0, 0, 0, 5}),
		"short header":      {0, 0, 0, 3, 0, 3, 0},
		"inter-broker only": appendRawRequest(4, 0, 1, nil),
	}
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			rc := ts.dial(t)
			rc.sendRaw(frame)
			rc.expectClosed()
		})
	}
	// The server keeps serving others.
	rc := ts.dial(t)
	roundTrip[*kmsg.ApiVersionsResponse](rc, kmsg.NewPtrApiVersionsRequest(), 3)
}

func produceReq(topic string, partition int32, acks int16, batches ...[]byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks = acks
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	for _, b := range batches {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = partition
		rp.Records = b
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

func batch(t *testing.T, pid int64, epoch int16, seq int32, values ...string) []byte {
	t.Helper()
	rs := make([]record.Record, len(values))
	for i, v := range values {
		rs[i] = record.Record{Value: []byte(v)}
	}
	b, err := record.Build(record.BatchOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, FirstTimestamp: time.Now().UnixMilli()}, rs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func produceOnce(t *testing.T, rc *rawClient, topic string, b []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	resp := roundTrip[*kmsg.ProduceResponse](rc, produceReq(topic, 0, -1, b), 9)
	return resp.Topics[0].Partitions[0]
}

func TestProduceRejectsBadInput(t *testing.T) {
	ts := startServer(t, nil)
	rc := ts.dial(t)
	good := batch(t, -1, -1, -1, "a", "b")
	if p := produceOnce(t, rc, "t", good); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("good batch: %+v", p)
	}
	part, _ := ts.b.Partition("t", 0)
	leo := part.LogEndOffset()

	corrupt := append([]byte(nil), batch(t, -1, -1, -1, "x")...)
	corrupt[len(corrupt)-1] ^= 1
	control, _ := record.Build(record.BatchOptions{ProducerID: 5, Control: true}, []record.Record{{Key: []byte{0, 0, 0, 0}, Value: []byte{0, 0, 0, 0, 0, 0}}})
	txn, _ := record.Build(record.BatchOptions{ProducerID: 5, Transactional: true}, []record.Record{{Value: []byte("t")}})
	oldMagic := append([]byte(nil), good...)
	oldMagic[16] = 1
	big := batch(t, -1, -1, -1, string(make([]byte, 2<<20)))
	for name, tc := range map[string]struct {
		topic string
		b     []byte
		code  int16
	}{
		"bad crc":         {"t", corrupt, kerr.CorruptMessage.Code},
		"truncated":       {"t", good[:len(good)-3], kerr.CorruptMessage.Code},
		"two batches":     {"t", append(append([]byte(nil), good...), good...), kerr.InvalidRecord.Code},
		"control batch":   {"t", control, kerr.InvalidRecord.Code},
		"transactional":   {"t", txn, kerr.InvalidTxnState.Code},
		"magic 1":         {"t", oldMagic, kerr.UnsupportedForMessageFormat.Code},
		"too large":       {"t", big, kerr.MessageTooLarge.Code},
		"unknown part":    {"t", good, kerr.UnknownTopicOrPartition.Code},
		"bad topic name":  {"no/slash", good, kerr.InvalidTopicException.Code},
		"dot topic name":  {"..", good, kerr.InvalidTopicException.Code},
		"empty recordset": {"t", nil, kerr.CorruptMessage.Code},
	} {
		t.Run(name, func(t *testing.T) {
			req := produceReq(tc.topic, 0, -1, tc.b)
			if name == "unknown part" {
				req.Topics[0].Partitions[0].Partition = 7
			}
			resp := roundTrip[*kmsg.ProduceResponse](rc, req, 9)
			p := resp.Topics[0].Partitions[0]
			if p.ErrorCode != tc.code {
				t.Fatalf("error %d (%v), want %d", p.ErrorCode, p.ErrorMessage, tc.code)
			}
		})
	}
	if got := part.LogEndOffset(); got != leo {
		t.Fatalf("rejected batches reached the log: end offset %d -> %d", leo, got)
	}
	req := produceReq("t", 0, 2, good)
	resp := roundTrip[*kmsg.ProduceResponse](rc, req, 9)
	if resp.Topics[0].Partitions[0].ErrorCode != kerr.InvalidRequiredAcks.Code {
		t.Fatalf("acks=2: %d", resp.Topics[0].Partitions[0].ErrorCode)
	}
}

func TestIdempotentProduce(t *testing.T) {
	ts := startServer(t, nil)
	rc := ts.dial(t)
	ip := roundTrip[*kmsg.InitProducerIDResponse](rc, kmsg.NewPtrInitProducerIDRequest(), 4)
	if ip.ErrorCode != 0 || ip.ProducerID < 0 || ip.ProducerEpoch != 0 {
		t.Fatalf("init producer id: %+v", ip)
	}
	pid := ip.ProducerID
	b0 := batch(t, pid, 0, 0, "a", "b", "c")
	b1 := batch(t, pid, 0, 3, "d")
	if p := produceOnce(t, rc, "idem", b0); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("first: %+v", p)
	}
	if p := produceOnce(t, rc, "idem", b1); p.ErrorCode != 0 || p.BaseOffset != 3 {
		t.Fatalf("second: %+v", p)
	}
	// A retry of the first batch is answered with its original offset and
	// not written again.
	if p := produceOnce(t, rc, "idem", batch(t, pid, 0, 0, "a", "b", "c")); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("retry: %+v", p)
	}
	part, _ := ts.b.Partition("idem", 0)
	if part.LogEndOffset() != 4 {
		t.Fatalf("retry was written: end offset %d", part.LogEndOffset())
	}
	if p := produceOnce(t, rc, "idem", batch(t, pid, 0, 9, "gap")); p.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap: %d", p.ErrorCode)
	}
	if p := produceOnce(t, rc, "idem", batch(t, pid, 1, 5, "new epoch not at 0")); p.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("new epoch at 5: %d", p.ErrorCode)
	}
	if p := produceOnce(t, rc, "idem", batch(t, pid, 1, 0, "new epoch")); p.ErrorCode != 0 || p.BaseOffset != 4 {
		t.Fatalf("new epoch: %+v", p)
	}
	if p := produceOnce(t, rc, "idem", batch(t, pid, 0, 4, "fenced")); p.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("old epoch: %d", p.ErrorCode)
	}
	ip2 := roundTrip[*kmsg.InitProducerIDResponse](rc, kmsg.NewPtrInitProducerIDRequest(), 4)
	if ip2.ProducerID == pid {
		t.Fatal("producer id reused")
	}
}

func fetchReq(topic string, partition int32, offset int64, maxWait int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = maxWait
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = partition
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func TestFetchLongPollAndErrors(t *testing.T) {
	ts := startServer(t, nil)
	producer := ts.dial(t)
	if p := produceOnce(t, producer, "f", batch(t, -1, -1, -1, "one")); p.ErrorCode != 0 {
		t.Fatal(p.ErrorCode)
	}
	consumer := ts.dial(t)
	resp := roundTrip[*kmsg.FetchResponse](consumer, fetchReq("f", 0, 5, 0), 11)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.OffsetOutOfRange.Code || p.HighWatermark != 1 {
		t.Fatalf("out of range: %+v", p)
	}
	resp = roundTrip[*kmsg.FetchResponse](consumer, fetchReq("nope", 0, 0, 0), 11)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown topic: %d", p.ErrorCode)
	}
	req := fetchReq("f", 0, 0, 0)
	req.Topics[0].Partitions[0].CurrentLeaderEpoch = 3
	resp = roundTrip[*kmsg.FetchResponse](consumer, req, 11)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.UnknownLeaderEpoch.Code {
		t.Fatalf("future leader epoch: %d", p.ErrorCode)
	}

	// A long poll at the end returns as soon as a record arrives.
	req = fetchReq("f", 0, 1, 30_000)
	req.SetVersion(11)
	corr := consumer.send(req)
	produceOnce(t, producer, "f", batch(t, -1, -1, -1, "two"))
	fr := kmsg.NewPtrFetchResponse()
	fr.SetVersion(11)
	if got := consumer.recv(fr); got != corr {
		t.Fatalf("corr %d", got)
	}
	p := fr.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.HighWatermark != 2 || len(p.RecordBatches) == 0 || record.PeekBaseOffset(p.RecordBatches) != 1 {
		t.Fatalf("long poll result: err %d hw %d %d bytes", p.ErrorCode, p.HighWatermark, len(p.RecordBatches))
	}
}

func TestIncrementalFetchSession(t *testing.T) {
	ts := startServer(t, nil)
	producer := ts.dial(t)
	produceOnce(t, producer, "s", batch(t, -1, -1, -1, "a"))
	produceOnce(t, producer, "s2", batch(t, -1, -1, -1, "a"))
	c := ts.dial(t)
	req := fetchReq("s", 0, 0, 0)
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "s2"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	req.SessionEpoch = 0 // open a session
	resp := roundTrip[*kmsg.FetchResponse](c, req, 11)
	if resp.SessionID == 0 || len(resp.Topics) != 2 {
		t.Fatalf("session %d, %d topics", resp.SessionID, len(resp.Topics))
	}
	id := resp.SessionID
	incr := func(epoch int32, topics ...kmsg.FetchRequestTopic) *kmsg.FetchResponse {
		r := kmsg.NewPtrFetchRequest()
		r.SessionID, r.SessionEpoch, r.MaxBytes, r.MinBytes = id, epoch, 1<<20, 0
		r.Topics = topics
		return roundTrip[*kmsg.FetchResponse](c, r, 11)
	}
	// The client moves both partitions to offset 1; nothing new since.
	moved := []kmsg.FetchRequestTopic{}
	for _, name := range []string{"s", "s2"} {
		t := kmsg.NewFetchRequestTopic()
		t.Topic = name
		p := kmsg.NewFetchRequestTopicPartition()
		p.FetchOffset, p.PartitionMaxBytes = 1, 1<<20
		t.Partitions = append(t.Partitions, p)
		moved = append(moved, t)
	}
	if r := incr(1, moved...); r.ErrorCode != 0 || len(r.Topics) != 0 {
		t.Fatalf("nothing new: error %d, %d topics", r.ErrorCode, len(r.Topics))
	}
	produceOnce(t, producer, "s2", batch(t, -1, -1, -1, "b"))
	r := incr(2)
	if len(r.Topics) != 1 || r.Topics[0].Topic != "s2" || len(r.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("after produce: %+v", r.Topics)
	}
	if r := incr(2); r.ErrorCode != kerr.InvalidFetchSessionEpoch.Code {
		t.Fatalf("stale epoch: %d", r.ErrorCode)
	}
	r2 := kmsg.NewPtrFetchRequest()
	r2.SessionID, r2.SessionEpoch = 12345, 1
	if r := roundTrip[*kmsg.FetchResponse](c, r2, 11); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("unknown session: %d", r.ErrorCode)
	}
}

func TestPipeliningAndAcksZero(t *testing.T) {
	ts := startServer(t, nil)
	rc := ts.dial(t)
	// Several produces and a metadata request written back to back are
	// answered in order; the acks=0 one is not answered at all.
	var corrs []int32
	for i := range 5 {
		req := produceReq("pipe", 0, -1, batch(t, -1, -1, -1, "x"))
		if i == 2 {
			req.Acks = 0
		}
		req.SetVersion(9)
		c := rc.send(req)
		if i != 2 {
			corrs = append(corrs, c)
		}
	}
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	corrs = append(corrs, rc.send(md))
	for i, want := range corrs {
		var resp kmsg.Response = kmsg.NewPtrProduceResponse()
		if i == len(corrs)-1 {
			resp = kmsg.NewPtrMetadataResponse()
			resp.SetVersion(12)
		} else {
			resp.SetVersion(9)
		}
		if got := rc.recv(resp); got != want {
			t.Fatalf("response %d has correlation %d, want %d", i, got, want)
		}
	}
	part, _ := ts.b.Partition("pipe", 0)
	if part.HighWatermark() != 5 {
		t.Fatalf("hw %d, want 5 (acks=0 batch included)", part.HighWatermark())
	}
}

func TestMetadataAutoCreateAndInvalidNames(t *testing.T) {
	ts := startServer(t, nil)
	rc := ts.dial(t)
	req := kmsg.NewPtrMetadataRequest()
	for _, n := range []string{"auto", "bad name", "a.b"} {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, rt)
	}
	req.AllowAutoTopicCreation = true
	resp := roundTrip[*kmsg.MetadataResponse](rc, req, 12)
	codes := map[string]int16{}
	for _, t := range resp.Topics {
		codes[*t.Topic] = t.ErrorCode
	}
	if codes["auto"] != 0 || codes["bad name"] != kerr.InvalidTopicException.Code || codes["a.b"] != 0 {
		t.Fatalf("codes %v", codes)
	}
	// a_b collides with a.b.
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("a_b")}}
	resp = roundTrip[*kmsg.MetadataResponse](rc, req, 12)
	if resp.Topics[0].ErrorCode != kerr.InvalidTopicException.Code {
		t.Fatalf("colliding name: %d", resp.Topics[0].ErrorCode)
	}
	// Without permission to auto-create, unknown stays unknown.
	req.AllowAutoTopicCreation = false
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("manual")}}
	resp = roundTrip[*kmsg.MetadataResponse](rc, req, 12)
	if resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("no auto-create: %d", resp.Topics[0].ErrorCode)
	}
	// v1 with no topics lists none; v0 with no topics lists all.
	empty := kmsg.NewPtrMetadataRequest()
	empty.Topics = []kmsg.MetadataRequestTopic{}
	if r := roundTrip[*kmsg.MetadataResponse](rc, empty, 1); len(r.Topics) != 0 {
		t.Fatalf("v1 empty list returned %d topics", len(r.Topics))
	}
	r := roundTrip[*kmsg.MetadataResponse](rc, empty, 0)
	user, internal := 0, 0
	for _, t := range r.Topics {
		if strings.HasPrefix(*t.Topic, "__") { // v0 has no IsInternal
			internal++
		} else {
			user++
		}
	}
	if user != 2 || internal != 0 { // internal topics appear on first use
		t.Fatalf("v0 empty list returned %d user and %d internal topics", user, internal)
	}
}

func TestCreateTopicsValidateOnlyDefaults(t *testing.T) {
	ts := startServer(t, nil)
	rc := ts.dial(t)
	req := kmsg.NewPtrCreateTopicsRequest()
	req.ValidateOnly = true
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "x", -1, -1
	req.Topics = append(req.Topics, rt)
	resp := roundTrip[*kmsg.CreateTopicsResponse](rc, req, 7)
	if tr := resp.Topics[0]; tr.ErrorCode != 0 || tr.NumPartitions != 1 || tr.ReplicationFactor != 1 {
		t.Fatalf("validate-only with defaults: %+v", tr)
	}
	if _, ok := ts.b.Topic("x"); ok {
		t.Fatal("validate-only created the topic")
	}
}

func TestCompactedTopicNeedsKeys(t *testing.T) {
	ts := startServer(t, nil)
	if _, err := ts.b.CreateTopic(broker.TopicSpec{Name: "c", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "compact"}}, false); err != nil {
		t.Fatal(err)
	}
	rc := ts.dial(t)
	if p := produceOnce(t, rc, "c", batch(t, -1, -1, -1, "no key")); p.ErrorCode != kerr.InvalidRecord.Code {
		t.Fatalf("keyless record on compacted topic: %d", p.ErrorCode)
	}
	keyed, _ := record.Build(record.BatchOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Compression: record.CompressionLZ4},
		[]record.Record{{Key: []byte("k"), Value: []byte("v")}})
	if p := produceOnce(t, rc, "c", keyed); p.ErrorCode != 0 {
		t.Fatalf("keyed record: %d", p.ErrorCode)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	fm := kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz"))
	seeds := []kmsg.Request{
		kmsg.NewPtrApiVersionsRequest(), kmsg.NewPtrMetadataRequest(), produceReq("t", 0, -1, []byte("junk")),
		fetchReq("t", 0, 0, 100), kmsg.NewPtrCreateTopicsRequest(), kmsg.NewPtrListOffsetsRequest(),
	}
	for _, r := range seeds {
		for _, v := range []int16{0, 3, 9, 12} {
			if v > r.MaxVersion() {
				continue
			}
			r.SetVersion(v)
			frame := fm.AppendRequest(nil, r, 1)
			f.Add(frame[4:])
		}
	}
	apis := newAPITable()
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, req, err := decodeRequest(frame, apis)
		if err != nil {
			return
		}
		if req == nil || req.Key() != h.key || req.GetVersion() != h.version {
			t.Fatalf("decoded %v for key %d v%d", req, h.key, h.version)
		}
	})
}
