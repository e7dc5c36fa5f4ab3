// Package transform is the Go SDK for Weir transform modules: WebAssembly
// programs that filter, map, split or aggregate records inside the broker,
// in a producer or in a consumer.
//
// A module registers exactly one function from an init function and is
// built as a WASI reactor with the standard toolchain:
//
//	package main
//
//	import (
//		"bytes"
//
//		"github.com/weir-dev/weir/sdk/go/transform"
//	)
//
//	func init() {
//		transform.OnMap(func(r transform.Record) (transform.Record, error) {
//			r.Value = bytes.ToUpper(r.Value)
//			return r, nil
//		})
//	}
//
//	func main() {}
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o upper.wasm .
//
// The host calls the module once per record batch (see
// docs/format/transform-abi.md); the SDK decodes the batch, calls the
// registered function for each record and encodes what it returns. A
// record's Key, Value and header values alias the batch and are valid only
// during the call: copy what you keep (in aggregate state, Set copies).
// They may be modified in place.
package transform

import (
	"errors"
	"fmt"
)

// Kind is what a module does with each record; the broker uses it to refuse
// kinds a use cannot take (a view computes records at read time, so it
// takes only filters and maps).
type Kind int32

const (
	KindFilter    Kind = 1 // keep or drop each record
	KindMap       Kind = 2 // one record out for each record in
	KindFilterMap Kind = 3 // zero or one record out for each record in
	KindFlatMap   Kind = 4 // any number of records out for each record in
	KindAggregate Kind = 5 // running state over records, any number out
)

func (k Kind) String() string {
	switch k {
	case KindFilter:
		return "filter"
	case KindMap:
		return "map"
	case KindFilterMap:
		return "filter-map"
	case KindFlatMap:
		return "flat-map"
	case KindAggregate:
		return "aggregate"
	}
	return fmt.Sprintf("kind(%d)", int32(k))
}

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one record. Nil Key or Value means null.
type Record struct {
	Key     []byte
	Value   []byte
	Headers []Header
	// Timestamp is in milliseconds since the Unix epoch.
	Timestamp int64
	// Offset is the record's offset in its input topic (read only: an
	// output record is tied to the input record it came from).
	Offset int64
	// Output selects the output topic by position: 0 is the first (the
	// default), 1 the second, and so on, in the order they were given
	// at deploy time.
	Output int
}

// Header returns the value of the first header named key.
func (r *Record) Header(key string) ([]byte, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// State is an aggregate's running state: a map from keys to values that
// the host saves with the transform's progress and restores after a
// restart, so an aggregate resumes where it stopped.
type State interface {
	Get(key []byte) ([]byte, bool)
	Set(key, value []byte) // copies both
	Delete(key []byte)
	Len() int
}

// The registered function, set once by the module's init. A WebAssembly
// module is one single-threaded program whose exports are package-level
// functions, so the SDK keeps its state at package level.
var (
	kind    Kind
	handler func(r *Record, emit func(*Record)) error
	// filter is OnFilter's function: a record it keeps is sent back as
	// a reference to the input record, not a copy of it.
	filter func(r Record) bool
	// mapFn is OnMap's function, called without going through handler.
	mapFn  func(r Record) (Record, error)
	config Config
	state  = mapState{}
	// emitted holds the record being emitted (see OnMap).
	emitted Record
)

// Config is what the transform was deployed with.
type Config struct {
	Input   string            // input topic ("" when run outside the broker)
	Outputs []string          // output topics, in Output order
	Params  map[string]string // user parameters
}

// Param returns a deploy-time parameter.
func Param(name string) (string, bool) {
	v, ok := config.Params[name]
	return v, ok
}

// Params returns every deploy-time parameter.
func Params() map[string]string { return config.Params }

// Deployment returns the transform's configuration.
func Deployment() Config { return config }

var errTwice = errors.New("a module registers one transform function")

func register(k Kind, h func(r *Record, emit func(*Record)) error) {
	if handler != nil {
		panic(errTwice)
	}
	kind, handler = k, h
}

// OnFilter keeps the records for which keep returns true.
func OnFilter(keep func(r Record) bool) {
	register(KindFilter, func(r *Record, emit func(*Record)) error {
		if keep(*r) {
			emit(r)
		}
		return nil
	})
	filter = keep
}

// OnMap replaces each record by what fn returns. An error skips the
// record, sends it to the dead-letter topic or stops the transform, as its
// error policy says.
func OnMap(fn func(r Record) (Record, error)) {
	register(KindMap, func(r *Record, emit func(*Record)) error {
		out, err := fn(*r)
		if err != nil {
			return err
		}
		// Through a package-level Record: a local whose address goes
		// to emit would be allocated on the heap for every record.
		emitted = out
		emit(&emitted)
		return nil
	})
	mapFn = fn
}

// OnFilterMap replaces each record by what fn returns, or drops it when
// fn returns false.
func OnFilterMap(fn func(r Record) (Record, bool, error)) {
	register(KindFilterMap, func(r *Record, emit func(*Record)) error {
		out, ok, err := fn(*r)
		if err != nil || !ok {
			return err
		}
		emitted = out
		emit(&emitted)
		return nil
	})
}

// OnFlatMap calls fn for each record; fn emits any number of records.
func OnFlatMap(fn func(r Record, emit func(Record)) error) {
	register(KindFlatMap, func(r *Record, emit func(*Record)) error {
		return fn(*r, func(out Record) {
			emitted = out
			emit(&emitted)
		})
	})
}

// OnAggregate calls fn for each record with the running state; fn updates
// it and emits any number of records (typically the new value of what it
// changed).
func OnAggregate(fn func(s State, r Record, emit func(Record)) error) {
	register(KindAggregate, func(r *Record, emit func(*Record)) error {
		return fn(state, *r, func(out Record) {
			emitted = out
			emit(&emitted)
		})
	})
}

// mapState is the State of an aggregate.
type mapState map[string][]byte

func (m mapState) Get(key []byte) ([]byte, bool) {
	v, ok := m[string(key)]
	return v, ok
}

func (m mapState) Set(key, value []byte) { m[string(key)] = append([]byte(nil), value...) }
func (m mapState) Delete(key []byte)     { delete(m, string(key)) }
func (m mapState) Len() int              { return len(m) }
