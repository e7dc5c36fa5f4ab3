package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// encodeFrame encodes envs as one frame, as a peer's writer would.
func encodeFrame(t testing.TB, envs []Envelope) []byte {
	t.Helper()
	f := newFrameBuf(nil)
	for _, e := range envs {
		_, size := envelopeLen(e.Group, e.Msg)
		if err := f.add(e.Group, e.Msg, size); err != nil {
			t.Fatal(err)
		}
	}
	return f.seal()
}

func sampleEnvelopes() []Envelope {
	return []Envelope{
		{Group: 0, Msg: heartbeat(1, 2, 0)},
		{Group: 1, Msg: appMsg(1, 2, 5, []byte("record batch bytes"))},
		{Group: 1 << 40, Msg: &raftpb.Message{}},
		{Group: 300, Msg: &raftpb.Message{
			Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(1), To: proto.Uint64(2),
			Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
				Index: proto.Uint64(99), Term: proto.Uint64(4),
				ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}},
			}},
		}},
	}
}

func equalEnvelopes(t testing.TB, got, want []Envelope) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d envelopes, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Group != want[i].Group || !proto.Equal(got[i].Msg, want[i].Msg) {
			t.Fatalf("envelope %d: got %s, want %s", i, describe(got[i]), describe(want[i]))
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	want := sampleEnvelopes()
	frame := encodeFrame(t, want)
	// Two frames back to back, then a clean end.
	r := bytes.NewReader(append(append([]byte(nil), frame...), encodeFrame(t, nil)...))
	payload, err := readFrame(r, nil, DefaultMaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeFrame(payload)
	if err != nil {
		t.Fatal(err)
	}
	equalEnvelopes(t, got, want)
	// Decoded messages must not alias the read buffer, which is reused.
	clear(payload)
	equalEnvelopes(t, got, want)

	payload, err = readFrame(r, payload, DefaultMaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeFrame(payload); err != nil || len(got) != 0 {
		t.Fatalf("empty frame: %d envelopes, %v", len(got), err)
	}
	if _, err := readFrame(r, payload, DefaultMaxFrameSize); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

func TestFrameCorruption(t *testing.T) {
	frame := encodeFrame(t, sampleEnvelopes())
	decode := func(b []byte, maxSize int) error {
		payload, err := readFrame(bytes.NewReader(b), nil, maxSize)
		if err != nil {
			return err
		}
		_, err = decodeFrame(payload)
		return err
	}
	// Every single flipped bit is caught (by the CRC, or by the length
	// check when it hits the length field).
	for i := range len(frame) * 8 {
		b := append([]byte(nil), frame...)
		b[i/8] ^= 1 << (i % 8)
		if err := decode(b, DefaultMaxFrameSize); err == nil {
			t.Fatalf("bit %d flipped: decoded without error", i)
		}
	}
	// Every truncation is caught.
	for n := range len(frame) {
		err := decode(frame[:n], DefaultMaxFrameSize)
		if n == 0 && err != io.EOF {
			t.Fatalf("empty input: %v, want io.EOF", err)
		}
		if n > 0 && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("truncated to %d: %v, want unexpected EOF", n, err)
		}
	}
	if err := decode(frame, len(frame)-frameHeaderLen-1); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("over the limit: %v, want errFrameTooLarge", err)
	}
	// A frame that claims 4 GiB is refused from its header alone.
	huge := binary.BigEndian.AppendUint32(nil, 0xffffffff)
	huge = append(huge, 0, 0, 0, 0)
	if err := decode(huge, DefaultMaxFrameSize); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("4 GiB claim: %v", err)
	}
}

// sealPayload frames an arbitrary payload with a correct CRC, to reach the
// decoder with bytes the CRC does not catch.
func sealPayload(payload []byte) []byte {
	f := frameBuf{b: append(make([]byte, frameHeaderLen), payload...)}
	f.count = binary.BigEndian.Uint32(payload) // seal rewrites the count
	return f.seal()
}

func TestDecodeMalformed(t *testing.T) {
	valid := encodeFrame(t, sampleEnvelopes())[frameHeaderLen:]
	cases := map[string][]byte{
		"short":              {0, 0},
		"count too large":    binary.BigEndian.AppendUint32(nil, 1<<31),
		"missing envelope":   binary.BigEndian.AppendUint32(nil, 1),
		"bad group varint":   append(binary.BigEndian.AppendUint32(nil, 1), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
		"length past end":    append(binary.BigEndian.AppendUint32(nil, 1), 1, 10, 0),
		"not a message":      append(binary.BigEndian.AppendUint32(nil, 1), 1, 3, 0xff, 0xff, 0xff),
		"trailing bytes":     append(append([]byte(nil), valid...), 0),
		"count one too many": append(binary.BigEndian.AppendUint32(nil, 5), valid[frameCountLen:]...),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeFrame(payload); !errors.Is(err, errMalformed) {
				t.Fatalf("got %v, want errMalformed", err)
			}
		})
	}
}

func TestHelloRoundTrip(t *testing.T) {
	want := hello{version: protocolVersion, from: 3, to: 9, cluster: "prod-eu"}
	got, err := readHello(bytes.NewReader(appendHello(nil, want)))
	if err != nil || got != want {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
	b := appendHello(nil, want)
	b[len(b)-1] ^= 1
	if _, err := readHello(bytes.NewReader(b)); !errors.Is(err, errChecksum) {
		t.Fatalf("flipped cluster byte: %v", err)
	}
	if _, err := readHello(strings.NewReader("GET / HTTP/1.1\r\n\r\n")); !errors.Is(err, errBadMagic) {
		t.Fatalf("http request: %v", err)
	}
	v2 := appendHello(nil, hello{version: 2, from: 3})
	if got, err := readHello(bytes.NewReader(v2)); !errors.Is(err, errBadVersion) || got.version != 2 {
		t.Fatalf("version 2: %+v, %v", got, err)
	}
	status, node, err := readAck(bytes.NewReader(appendAck(nil, ackClusterMismatch, 4)))
	if err != nil || status != ackClusterMismatch || node != 4 {
		t.Fatalf("ack: %v %d %v", status, node, err)
	}
}

func TestUvarintLen(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 16383, 16384, 1<<63 - 1, 1<<64 - 1} {
		if got, want := uvarintLen(v), len(binary.AppendUvarint(nil, v)); got != want {
			t.Errorf("uvarintLen(%d) = %d, want %d", v, got, want)
		}
	}
}
