package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Wire format (version 1); docs/format/raft-transport.md has the prose version.
//
//	hello  (dialer → acceptor, once):  "WRFT" | version u16 | body length u16 | crc32c(body) u32 | body
//	       body: sender node id u64 | receiver node id u64 (0: any) | cluster id bytes
//	ack    (acceptor → dialer, once):  "WRFT" | version u16 | status u8 | 0 u8 | acceptor node id u64
//	frame  (dialer → acceptor, repeated): payload length u32 | crc32c(payload) u32 | payload
//	       payload: envelope count u32 | count × (group uvarint | message length uvarint | raftpb.Message)
//
// All fixed-width integers are big-endian. Only the dialer sends frames; each
// node dials each of its peers, so a node pair uses two connections.
const (
	magic           = "WRFT"
	protocolVersion = 1

	helloPrefixLen  = 12 // magic, version, body length, crc
	helloFixedBody  = 16 // sender, receiver
	maxClusterIDLen = 255
	ackLen          = 16

	frameHeaderLen = 8 // payload length, crc
	frameCountLen  = 4 // envelope count, the first field of the payload
	// minEnvelopeLen is the smallest encoded envelope: a one-byte group, a
	// one-byte length of zero and an empty message.
	minEnvelopeLen = 2

	// DefaultMaxFrameSize bounds a frame's payload. A peer announcing a
	// larger frame is cut off before anything is allocated for it.
	DefaultMaxFrameSize = 16 << 20
	// frameTarget is where the writer starts a new frame while coalescing,
	// so a receiver's buffer stays small; a single larger envelope still
	// gets a frame of its own, up to the maximum frame size.
	frameTarget = 1 << 20
)

// ackStatus is the acceptor's verdict on a hello.
type ackStatus uint8

const (
	ackOK ackStatus = iota
	ackBadVersion
	ackClusterMismatch
	ackWrongNode
)

func (s ackStatus) String() string {
	switch s {
	case ackOK:
		return "ok"
	case ackBadVersion:
		return "unsupported protocol version"
	case ackClusterMismatch:
		return "cluster id mismatch"
	case ackWrongNode:
		return "wrong node id"
	}
	return fmt.Sprintf("status %d", uint8(s))
}

var (
	errBadMagic      = errors.New("bad magic")
	errBadVersion    = errors.New("unsupported protocol version")
	errChecksum      = errors.New("checksum mismatch")
	errFrameTooLarge = errors.New("frame too large")
	errMalformed     = errors.New("malformed frame")
	errMsgTooLarge   = errors.New("message too large for a frame")
)

// refusedError is the dialer's error when the acceptor answers the hello
// with anything but ackOK.
type refusedError struct{ status ackStatus }

func (e refusedError) Error() string { return "peer refused handshake: " + e.status.String() }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// hello is what a dialer says first.
type hello struct {
	version uint16
	from    uint64 // the dialer
	to      uint64 // the node the dialer believes it reached; 0: any
	cluster string
}

func appendHello(b []byte, h hello) []byte {
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint16(b, h.version)
	b = binary.BigEndian.AppendUint16(b, uint16(helloFixedBody+len(h.cluster)))
	crcAt := len(b)
	b = append(b, 0, 0, 0, 0)
	body := len(b)
	b = binary.BigEndian.AppendUint64(b, h.from)
	b = binary.BigEndian.AppendUint64(b, h.to)
	b = append(b, h.cluster...)
	binary.BigEndian.PutUint32(b[crcAt:], crc32.Checksum(b[body:], castagnoli))
	return b
}

// readHello reads and checks a hello. For a hello of another protocol
// version it returns the version it saw and errBadVersion, so the acceptor
// can say so; the body of such a hello is not interpreted.
func readHello(r io.Reader) (hello, error) {
	var pre [helloPrefixLen]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return hello{}, fmt.Errorf("read hello: %w", err)
	}
	if string(pre[:4]) != magic {
		return hello{}, fmt.Errorf("read hello: %w %q", errBadMagic, pre[:4])
	}
	h := hello{version: binary.BigEndian.Uint16(pre[4:])}
	if h.version != protocolVersion {
		return h, fmt.Errorf("read hello: %w %d", errBadVersion, h.version)
	}
	n := int(binary.BigEndian.Uint16(pre[6:]))
	if n < helloFixedBody || n > helloFixedBody+maxClusterIDLen {
		return hello{}, fmt.Errorf("read hello: %w: body length %d", errMalformed, n)
	}
	var buf [helloFixedBody + maxClusterIDLen]byte
	body := buf[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		return hello{}, fmt.Errorf("read hello: %w", err)
	}
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(pre[8:]) {
		return hello{}, fmt.Errorf("read hello: %w", errChecksum)
	}
	h.from = binary.BigEndian.Uint64(body)
	h.to = binary.BigEndian.Uint64(body[8:])
	h.cluster = string(body[helloFixedBody:])
	return h, nil
}

func appendAck(b []byte, status ackStatus, node uint64) []byte {
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint16(b, protocolVersion)
	b = append(b, byte(status), 0)
	return binary.BigEndian.AppendUint64(b, node)
}

func readAck(r io.Reader) (ackStatus, uint64, error) {
	var b [ackLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, 0, fmt.Errorf("read handshake reply: %w", err)
	}
	if string(b[:4]) != magic {
		return 0, 0, fmt.Errorf("read handshake reply: %w %q", errBadMagic, b[:4])
	}
	return ackStatus(b[6]), binary.BigEndian.Uint64(b[8:]), nil
}

// frameBuf is a frame being filled: header space, count, then envelopes.
type frameBuf struct {
	b     []byte
	count uint32
}

func newFrameBuf(b []byte) frameBuf {
	return frameBuf{b: append(b[:0], make([]byte, frameHeaderLen+frameCountLen)...)}
}

// payloadLen is the payload length so far, count field included.
func (f *frameBuf) payloadLen() int { return len(f.b) - frameHeaderLen }

var marshalCached = proto.MarshalOptions{UseCachedSize: true}

// envelopeLen returns the encoded length of an envelope and the message's
// size (computed once; the marshal that follows reuses it).
func envelopeLen(group uint64, m *raftpb.Message) (n, size int) {
	size = proto.Size(m)
	return uvarintLen(group) + uvarintLen(uint64(size)) + size, size
}

// add appends an envelope whose message size was just computed by
// envelopeLen. On error the frame is left as it was.
func (f *frameBuf) add(group uint64, m *raftpb.Message, size int) error {
	start := len(f.b)
	f.b = binary.AppendUvarint(f.b, group)
	f.b = binary.AppendUvarint(f.b, uint64(size))
	b, err := marshalCached.MarshalAppend(f.b, m)
	if err == nil && len(b)-len(f.b) != size {
		err = fmt.Errorf("message changed while encoding: size %d, wrote %d", size, len(b)-len(f.b))
	}
	if err != nil {
		f.b = f.b[:start]
		return fmt.Errorf("encode message of group %d: %w", group, err)
	}
	f.b = b
	f.count++
	return nil
}

// seal fills in the header and returns the whole frame.
func (f *frameBuf) seal() []byte {
	payload := f.b[frameHeaderLen:]
	binary.BigEndian.PutUint32(payload, f.count)
	binary.BigEndian.PutUint32(f.b, uint32(len(payload)))
	binary.BigEndian.PutUint32(f.b[4:], crc32.Checksum(payload, castagnoli))
	return f.b
}

// readFrame reads one frame into buf (reusing its capacity) and returns the
// checked payload. A clean end of stream before a frame is io.EOF. The
// buffer grows only as bytes actually arrive, so a peer that announces a
// large frame and stalls costs us little.
func readFrame(r io.Reader, buf []byte, maxSize int) ([]byte, error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return buf, err
	}
	n := uint64(binary.BigEndian.Uint32(hdr[:]))
	if n > uint64(maxSize) {
		return buf, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, n, maxSize)
	}
	if n < frameCountLen {
		return buf, fmt.Errorf("%w: payload of %d bytes", errMalformed, n)
	}
	buf, err := readN(r, buf[:0], int(n))
	if err != nil {
		return buf, fmt.Errorf("read frame of %d bytes: %w", n, noEOF(err))
	}
	if crc32.Checksum(buf, castagnoli) != binary.BigEndian.Uint32(hdr[4:]) {
		return buf, fmt.Errorf("frame of %d bytes: %w", n, errChecksum)
	}
	return buf, nil
}

// readN appends exactly n bytes from r to buf, growing it at most to twice
// what has arrived (and 64 KiB to start with).
func readN(r io.Reader, buf []byte, n int) ([]byte, error) {
	const step = 64 << 10
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), max(len(buf), step)))
		}
		want := min(n, cap(buf))
		got, err := io.ReadFull(r, buf[len(buf):want])
		buf = buf[:len(buf)+got]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodeFrame decodes a checked payload. The messages do not alias payload.
func decodeFrame(payload []byte) ([]Envelope, error) {
	if len(payload) < frameCountLen {
		return nil, fmt.Errorf("%w: payload of %d bytes", errMalformed, len(payload))
	}
	count := uint64(binary.BigEndian.Uint32(payload))
	b := payload[frameCountLen:]
	if count > uint64(len(b)/minEnvelopeLen) {
		return nil, fmt.Errorf("%w: %d envelopes in %d bytes", errMalformed, count, len(b))
	}
	envs := make([]Envelope, 0, count)
	for i := range count {
		group, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("%w: envelope %d: bad group id", errMalformed, i)
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, fmt.Errorf("%w: envelope %d: bad message length", errMalformed, i)
		}
		b = b[n:]
		m := new(raftpb.Message)
		if err := proto.Unmarshal(b[:size], m); err != nil {
			return nil, fmt.Errorf("%w: envelope %d of group %d: %w", errMalformed, i, group, err)
		}
		b = b[size:]
		envs = append(envs, Envelope{Group: group, Msg: m})
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after %d envelopes", errMalformed, len(b), count)
	}
	return envs, nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
