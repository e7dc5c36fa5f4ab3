package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// requestHeader is the part of a request before its body.
type requestHeader struct {
	key           int16
	version       int16
	correlationID int32
	clientID      string
}

// errMalformed marks a request that cannot be parsed; Kafka closes the
// connection on such input, and so do we.
var errMalformed = errors.New("malformed request")

// decodeRequest parses one request frame body (after the 4-byte size):
// header, then the body for the API key and version with kmsg. It returns
// errUnsupported (with the header filled in) for keys or versions the server
// does not implement, so the caller can answer or close as Kafka would.
func decodeRequest(frame []byte, apis *apiTable) (requestHeader, kmsg.Request, error) {
	var h requestHeader
	if len(frame) < 8 {
		return h, nil, fmt.Errorf("%w: %d-byte frame", errMalformed, len(frame))
	}
	h.key = int16(binary.BigEndian.Uint16(frame))
	h.version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.correlationID = int32(binary.BigEndian.Uint32(frame[4:]))
	r := kbin.Reader{Src: frame[8:]}
	if id := r.NullableString(); id != nil {
		h.clientID = *id
	}
	if !r.Ok() {
		return h, nil, fmt.Errorf("%w: client id", errMalformed)
	}
	api, ok := apis.lookup(h.key, h.version)
	if !ok {
		return h, nil, errUnsupported
	}
	req := kmsg.RequestForKey(h.key)
	req.SetVersion(h.version)
	if req.IsFlexible() {
		skipTags(&r)
		if !r.Ok() {
			return h, nil, fmt.Errorf("%w: header tags", errMalformed)
		}
	}
	if err := req.ReadFrom(r.Src); err != nil {
		return h, nil, fmt.Errorf("%w: %s v%d: %v", errMalformed, api.name, h.version, err)
	}
	return h, req, nil
}

var errUnsupported = errors.New("unsupported api key or version")

func skipTags(r *kbin.Reader) {
	n := r.Uvarint()
	for i := uint32(0); i < n && r.Ok(); i++ {
		r.Uvarint() // tag
		r.Span(int(r.Uvarint()))
	}
}

// appendResponse frames a response: size, correlation id, the flexible
// header's empty tag section where the version has one, then the body.
// ApiVersions responses always use the v0 header so that a client can read
// them before it knows which versions the broker speaks.
func appendResponse(dst []byte, correlationID int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(correlationID))
	if resp.IsFlexible() && resp.Key() != apiVersionsKey {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

const apiVersionsKey = 18
