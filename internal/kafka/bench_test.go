package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/record"
)

// BenchmarkProducePath measures the broker side of a produce request
// without the network: decode the frame, validate, append, (wait for the
// fsync,) encode the response. 16 records of 1 KiB per batch. The durable
// variant is bound by one fsync per request (nothing to group it with); the
// pagecache variant (flush.messages large) shows the CPU cost alone.
func BenchmarkProducePath(b *testing.B) {
	for _, mode := range []string{"durable", "pagecache"} {
		for _, codec := range []record.Compression{record.CompressionNone, record.CompressionZstd} {
			b.Run(mode+"/"+codec.String(), func(b *testing.B) {
				ts := startBenchServer(b)
				if mode == "pagecache" {
					if err := ts.b.AlterTopicConfigs("bench", map[string]string{"flush.messages": "1000000000"}, false); err != nil {
						b.Fatal(err)
					}
				}
				rs := make([]record.Record, 16)
				for i := range rs {
					v := make([]byte, 1024)
					for j := range v {
						v[j] = byte(i*31 + j*7)
					}
					rs[i] = record.Record{Value: v}
				}
				batch, err := record.Build(record.BatchOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Compression: codec}, rs)
				if err != nil {
					b.Fatal(err)
				}
				req := produceReq("bench", 0, -1, batch)
				req.SetVersion(9)
				frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("bench")).AppendRequest(nil, req, 1)[4:]
				c := &conn{s: ts.s}
				w := &connWriter{}
				b.SetBytes(16 * 1024)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					f := append([]byte(nil), frame...) // the reader gets a fresh frame per request
					h, r, err := decodeRequest(f, ts.s.apis)
					if err != nil {
						b.Fatal(err)
					}
					api, _ := ts.s.apis.lookup(h.key, h.version)
					p := api.handle(c, &h, r)
					resp := p.resp
					if p.later != nil {
						resp = p.later(w)
					}
					w.out = appendResponse(w.out[:0], 1, resp)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/16, "ns/record")
			})
		}
	}
}

// BenchmarkFetchPath measures serving a 1 MiB fetch from a caught-up log.
func BenchmarkFetchPath(b *testing.B) {
	ts := startBenchServer(b)
	part, err := ts.b.Partition("bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	rs := make([]record.Record, 16)
	for i := range rs {
		rs[i] = record.Record{Value: make([]byte, 1024)}
	}
	for range 2000 {
		batch, _ := record.Build(record.BatchOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, rs)
		res, err := part.Produce(batch)
		if err != nil {
			b.Fatal(err)
		}
		<-res.Committed.Done()
	}
	w := &connWriter{}
	hw := part.HighWatermark()
	off := int64(0)
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		req := fetchReq("bench", 0, off, 0)
		resp := ts.s.fetch(req, 11, w).(*kmsg.FetchResponse)
		w.out = appendResponse(w.out[:0], 1, resp)
		batches := resp.Topics[0].Partitions[0].RecordBatches
		if len(batches) == 0 {
			b.Fatal("empty fetch")
		}
		off = lastOffsetOf(batches) + 1
		if off >= hw {
			off = 0
		}
	}
}

func lastOffsetOf(b []byte) int64 {
	last := int64(-1)
	for len(b) > 0 {
		last = record.PeekLastOffset(b)
		b = b[record.PeekSize(b):]
	}
	return last
}

func startBenchServer(b *testing.B) *testServer {
	ts := startServerTB(b)
	if _, err := ts.b.AutoCreateTopic("bench"); err != nil {
		b.Fatal(err)
	}
	return ts
}
