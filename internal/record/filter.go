package record

import (
	"encoding/binary"
)

// DeleteHorizon returns the batch's delete horizon (KIP-534), the time in
// Unix milliseconds after which the log cleaner may remove its tombstones.
// A batch carries one once a cleaner has rewritten it while it held a
// tombstone; the horizon then lives in the base timestamp field.
func (h *Header) DeleteHorizon() (int64, bool) {
	if h.Attributes&deleteHorizonBit == 0 {
		return 0, false
	}
	return h.FirstTimestamp, true
}

// FilterOptions control Filter.
type FilterOptions struct {
	// StampDeleteHorizon asks that a batch which keeps at least one
	// tombstone and has no delete horizon yet gets DeleteHorizon as its
	// horizon: the attribute bit is set, the base timestamp becomes the
	// horizon and every record's timestamp delta is re-based so that record
	// timestamps do not change. This is what Kafka's cleaner does the first
	// time it sees a tombstone.
	StampDeleteHorizon bool
	DeleteHorizon      int64
	// KeepEmpty makes a batch from which every record is removed come out
	// as a header-only batch (no records, no compression) that still spans
	// the batch's offsets, instead of disappearing.
	KeepEmpty bool
	// MaxDecompressedBytes caps decompression; 0 means DefaultLimits.
	MaxDecompressedBytes int
}

// FilterResult says what Filter did to one batch.
type FilterResult struct {
	Records        int  // records in the input batch
	Kept           int  // records in the output
	KeptTombstones int  // kept records with a null value
	Changed        bool // the output differs from the input (or there is none)
	Stamped        bool // the output got a delete horizon
}

// Filter appends to dst batch b rewritten to hold only the records for which
// keep returns true, and returns the extended slice. The output keeps the
// input's base offset, last offset delta, partition leader epoch, producer
// id, epoch and base sequence, attributes and max timestamp, so the offsets
// and sequence numbers it spans do not change; kept records are copied
// byte for byte (unless a delete horizon re-bases their timestamps), then
// recompressed with the batch's codec, and the CRC is recomputed. A batch
// from which nothing needs removing is appended unchanged. A batch left
// without records is dropped (dst comes back as it was) unless KeepEmpty.
//
// b is untrusted: its frame, CRC and every record are checked, and offset
// deltas must increase and stay within the last offset delta (a batch
// Filter wrote may have gaps). keep sees each record with its offset delta,
// key and value; Headers is not filled in. Control batches are filtered
// like any other; callers that must keep them whole should not pass them.
func Filter(dst, b []byte, d *Decompressor, opts FilterOptions, keep func(h *Header, r *Record) bool) ([]byte, FilterResult, error) {
	var res FilterResult
	h, err := CheckFrame(b)
	if err != nil {
		return dst, res, err
	}
	if h.Attributes&^knownAttributeBitMask != 0 {
		return dst, res, corruptf("unknown attribute bits %#x", h.Attributes)
	}
	if h.NumRecords < 0 || h.LastOffsetDelta < 0 || int64(h.NumRecords) > int64(h.LastOffsetDelta)+1 {
		return dst, res, corruptf("%d records with last offset delta %d", h.NumRecords, h.LastOffsetDelta)
	}
	res.Records = int(h.NumRecords)
	body := b[HeaderSize:]
	codec := h.Compression()
	if codec != CompressionNone && len(body) > 0 {
		limit := opts.MaxDecompressedBytes
		if limit <= 0 {
			limit = DefaultLimits.MaxDecompressedBytes
		}
		buf, err := d.Decompress(codec, body, limit)
		if err != nil {
			return dst, res, err
		}
		defer d.Release(buf)
		body = buf
	}

	// Walk the records once, remembering where the kept ones are.
	type span struct{ start, end int }
	var kept []span
	var r Record
	prev := int32(-1)
	p := 0
	for i := int32(0); i < h.NumRecords; i++ {
		length, used := binary.Varint(body[p:])
		if used <= 0 || length < 0 || length > int64(len(body)-p-used) {
			return dst, res, corruptf("record %d: bad length", i)
		}
		start, end := p, p+used+int(length)
		if err := r.decode(body[p+used:end], false); err != nil {
			return dst, res, err
		}
		if r.OffsetDelta <= prev || r.OffsetDelta > h.LastOffsetDelta {
			return dst, res, corruptf("record %d has offset delta %d after %d (last %d)", i, r.OffsetDelta, prev, h.LastOffsetDelta)
		}
		prev = r.OffsetDelta
		r.Headers = nil
		if keep(&h, &r) {
			kept = append(kept, span{start, end})
			if r.Value == nil {
				res.KeptTombstones++
			}
		}
		p = end
	}
	if p != len(body) {
		return dst, res, corruptf("%d bytes after the last record", len(body)-p)
	}
	res.Kept = len(kept)
	_, hasHorizon := h.DeleteHorizon()
	stamp := opts.StampDeleteHorizon && !hasHorizon && res.KeptTombstones > 0
	if res.Kept == res.Records && !stamp {
		return append(dst, b...), res, nil
	}
	res.Changed = true
	if res.Kept == 0 {
		if !opts.KeepEmpty {
			return dst, res, nil
		}
		return AppendEmpty(dst, &h), res, nil
	}

	var out []byte
	for _, s := range kept {
		rec := body[s.start:s.end]
		if !stamp {
			out = append(out, rec...)
			continue
		}
		out = appendRebased(out, rec, h.FirstTimestamp-opts.DeleteHorizon)
	}
	if codec != CompressionNone {
		if out, err = Compress(codec, out); err != nil {
			return dst, res, err
		}
	}
	from := len(dst)
	dst = append(dst, b[:HeaderSize]...)
	dst = append(dst, out...)
	nb := dst[from:]
	be := binary.BigEndian
	be.PutUint32(nb[lengthPos:], uint32(len(nb)-LengthFieldEnd))
	if stamp {
		res.Stamped = true
		be.PutUint16(nb[attributesPos:], uint16(h.Attributes)|deleteHorizonBit)
		be.PutUint64(nb[firstTimestampPos:], uint64(opts.DeleteHorizon))
	}
	be.PutUint32(nb[numRecordsPos:], uint32(len(kept)))
	be.PutUint32(nb[crcPos:], Checksum(nb[attributesPos:]))
	return dst, res, nil
}

// appendRebased appends the encoded record rec (length prefix included) with
// its timestamp delta increased by shift.
func appendRebased(dst, rec []byte, shift int64) []byte {
	_, used := binary.Varint(rec)
	body := rec[used:]
	// body: attributes i8 | timestampDelta varint | the rest
	delta, n := binary.Varint(body[1:])
	rest := body[1+n:]
	var tmp [binary.MaxVarintLen64]byte
	dn := binary.PutVarint(tmp[:], delta+shift)
	dst = binary.AppendVarint(dst, int64(1+dn+len(rest)))
	dst = append(dst, body[0])
	dst = append(dst, tmp[:dn]...)
	return append(dst, rest...)
}

// AppendEmpty appends a header-only batch with h's offsets, leader epoch,
// producer fields and timestamps and no records: what a cleaner leaves when
// it must keep a batch's offsets (and sequence numbers) but none of its
// records. The compression bits are cleared; the rest of the attributes stay.
func AppendEmpty(dst []byte, h *Header) []byte {
	from := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	b := dst[from:]
	be := binary.BigEndian
	be.PutUint64(b[baseOffsetPos:], uint64(h.BaseOffset))
	be.PutUint32(b[lengthPos:], HeaderSize-LengthFieldEnd)
	be.PutUint32(b[leaderEpochPos:], uint32(h.LeaderEpoch))
	b[magicPos] = MagicV2
	be.PutUint16(b[attributesPos:], uint16(h.Attributes)&^compressionMask)
	be.PutUint32(b[lastOffsetDeltaPos:], uint32(h.LastOffsetDelta))
	be.PutUint64(b[firstTimestampPos:], uint64(h.FirstTimestamp))
	be.PutUint64(b[maxTimestampPos:], uint64(h.MaxTimestamp))
	be.PutUint64(b[producerIDPos:], uint64(h.ProducerID))
	be.PutUint16(b[producerEpochPos:], uint16(h.ProducerEpoch))
	be.PutUint32(b[baseSequencePos:], uint32(h.BaseSequence))
	be.PutUint32(b[numRecordsPos:], 0)
	be.PutUint32(b[crcPos:], Checksum(b[attributesPos:]))
	return dst
}

// AppendRebuilt appends a batch that spans the same offsets as the batch
// with header h but holds recs instead, uncompressed. Each record keeps its
// OffsetDelta (which must increase and stay within h's last offset delta)
// and TimestampDelta (relative to h's first timestamp). Producer fields,
// leader epoch and the transactional bit are h's. With no records it is
// AppendEmpty.
func AppendRebuilt(dst []byte, h *Header, recs []Record) []byte {
	if len(recs) == 0 {
		return AppendEmpty(dst, h)
	}
	from := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	maxTS := h.FirstTimestamp
	for i := range recs {
		dst = appendRecord(dst, &recs[i])
		if ts := h.FirstTimestamp + recs[i].TimestampDelta; ts > maxTS {
			maxTS = ts
		}
	}
	b := dst[from:]
	be := binary.BigEndian
	be.PutUint64(b[baseOffsetPos:], uint64(h.BaseOffset))
	be.PutUint32(b[lengthPos:], uint32(len(b)-LengthFieldEnd))
	be.PutUint32(b[leaderEpochPos:], uint32(h.LeaderEpoch))
	b[magicPos] = MagicV2
	be.PutUint16(b[attributesPos:], uint16(h.Attributes)&^compressionMask)
	be.PutUint32(b[lastOffsetDeltaPos:], uint32(h.LastOffsetDelta))
	be.PutUint64(b[firstTimestampPos:], uint64(h.FirstTimestamp))
	be.PutUint64(b[maxTimestampPos:], uint64(maxTS))
	be.PutUint64(b[producerIDPos:], uint64(h.ProducerID))
	be.PutUint16(b[producerEpochPos:], uint16(h.ProducerEpoch))
	be.PutUint32(b[baseSequencePos:], uint32(h.BaseSequence))
	be.PutUint32(b[numRecordsPos:], uint32(len(recs)))
	be.PutUint32(b[crcPos:], Checksum(b[attributesPos:]))
	return dst
}
