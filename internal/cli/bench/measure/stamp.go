package measure

import (
	"encoding/binary"
	"errors"
	"time"
)

// StampSize is the number of leading value bytes that carry a send time.
const StampSize = 8

// ErrShortValue is returned for values too short to hold a stamp.
var ErrShortValue = errors.New("value shorter than the 8-byte send stamp")

// Stamp writes t as big-endian Unix nanoseconds into the first 8 bytes of v.
func Stamp(v []byte, t time.Time) error {
	if len(v) < StampSize {
		return ErrShortValue
	}
	binary.BigEndian.PutUint64(v, uint64(t.UnixNano()))
	return nil
}

// ReadStamp returns the send time Stamp put into v.
func ReadStamp(v []byte) (time.Time, error) {
	if len(v) < StampSize {
		return time.Time{}, ErrShortValue
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))), nil
}

// Since returns now minus the stamp in v, in nanoseconds.
func Since(v []byte, now time.Time) (int64, error) {
	t, err := ReadStamp(v)
	if err != nil {
		return 0, err
	}
	return now.Sub(t).Nanoseconds(), nil
}

// Filler returns size bytes of deterministic pseudo-random data (xorshift
// from seed). Random bytes keep compression from flattering the numbers
// when --compression is set.
func Filler(size int, seed uint64) []byte {
	b := make([]byte, size)
	x := seed | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}
