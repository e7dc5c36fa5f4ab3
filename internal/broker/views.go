package broker

import (
	"crypto/sha256"
	"fmt"
	"sort"

	"github.com/weir-dev/weir/internal/record"
)

// A view is a read-only topic whose records are computed at fetch time
// from another topic's (its source): same partitions, same offsets, same
// leaders, no storage of its own. ViewFunc computes each batch.

// ViewFunc appends to dst the batch that stands for the source batch b in
// the view: the same offsets (records may be left out, leaving gaps, as in
// a compacted topic), or a batch without records.
type ViewFunc func(dst, b []byte) ([]byte, error)

type view struct {
	source *Topic
	fn     ViewFunc
}

// ErrReadOnlyView is returned for writes and changes to a view.
var ErrReadOnlyView = fmt.Errorf("%w: the topic is a read-only view", ErrInvalidTopic)

// SetView creates or replaces the view name over topic source. A topic of
// that name must not exist.
func (b *Broker) SetView(name, source string, fn ViewFunc) error {
	if err := ValidateTopicName(name); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.topics[name]; ok {
		return fmt.Errorf("%w: %q is a topic, not a view", ErrTopicExists, name)
	}
	src, ok := b.topics[source]
	if !ok {
		return fmt.Errorf("%w: view source %q", ErrUnknownTopicOrPartition, source)
	}
	t := &Topic{Name: name, ID: viewID(name), view: &view{source: src, fn: fn}}
	t.settings.Store(src.settings.Load())
	if old, ok := b.views[name]; ok {
		delete(b.byID, old.ID)
	}
	b.views[name] = t
	b.byID[t.ID] = t
	return nil
}

// RemoveView drops a view.
func (b *Broker) RemoveView(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.views[name]; ok {
		delete(b.views, name)
		delete(b.byID, t.ID)
	}
}

// Views returns every view, sorted by name.
func (b *Broker) Views() []*Topic {
	b.mu.RLock()
	out := make([]*Topic, 0, len(b.views))
	for _, t := range b.views {
		out = append(out, t)
	}
	b.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// IsView reports whether the topic is a view.
func (t *Topic) IsView() bool { return t.view != nil }

// ViewSource is the name of a view's source topic ("" for a topic).
func (t *Topic) ViewSource() string {
	if t.view == nil {
		return ""
	}
	return t.view.source.Name
}

// viewID derives a view's topic id from its name, so every node gives a
// view the same id.
func viewID(name string) [16]byte {
	sum := sha256.Sum256([]byte("weir view\x00" + name))
	var id [16]byte
	copy(id[:], sum[:16])
	return id
}

// ApplyView rewrites batches read from the source into the view's: dst
// gets, for each batch, what the view function makes of it. Control
// batches (transaction markers) pass through as they are.
func (t *Topic) ApplyView(dst, batches []byte) ([]byte, error) {
	for len(batches) >= record.HeaderSize {
		h, err := record.ParseHeader(batches)
		if err != nil {
			return dst, err
		}
		n := h.Size()
		if n > len(batches) {
			break // a partial batch at the end of a read: clients skip it too
		}
		b := batches[:n]
		batches = batches[n:]
		if h.Control() || h.NumRecords == 0 {
			dst = append(dst, b...)
			continue
		}
		if dst, err = t.view.fn(dst, b); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

func (b *Broker) isView(name string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	_, ok := b.views[name]
	return ok
}
