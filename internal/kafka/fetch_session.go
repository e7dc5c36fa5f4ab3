package kafka

import (
	"container/list"
	"math/rand/v2"
	"sync"
)

// fetchPart is one partition a fetch (or fetch session) asks for.
type fetchPart struct {
	topic       string
	topicID     [16]byte
	partition   int32
	offset      int64
	maxBytes    int32
	leaderEpoch int32

	// What the session last told the client, so incremental responses can
	// leave out partitions with nothing new.
	sentHW, sentLSO, sentStart int64
	sentErr                    int16
	sent                       bool
}

type partKey struct {
	topic     string
	topicID   [16]byte
	partition int32
}

// fetchSession is the state of an incremental fetch session (KIP-227): the
// partitions the client follows and the epoch it must send next.
type fetchSession struct {
	mu    sync.Mutex // held by the fetch using the session
	id    int32
	epoch int32
	parts []*fetchPart
	index map[partKey]*fetchPart
	elem  *list.Element
}

func (s *fetchSession) upsert(p fetchPart) {
	k := partKey{p.topic, p.topicID, p.partition}
	if cur, ok := s.index[k]; ok {
		cur.offset, cur.maxBytes, cur.leaderEpoch = p.offset, p.maxBytes, p.leaderEpoch
		return
	}
	np := p
	s.parts = append(s.parts, &np)
	s.index[k] = &np
}

func (s *fetchSession) forget(k partKey) {
	if _, ok := s.index[k]; !ok {
		return
	}
	delete(s.index, k)
	for i, p := range s.parts {
		if p.topic == k.topic && p.topicID == k.topicID && p.partition == k.partition {
			s.parts = append(s.parts[:i], s.parts[i+1:]...)
			return
		}
	}
}

// sessionCache holds fetch sessions, evicting the least recently used when
// full.
type sessionCache struct {
	mu   sync.Mutex
	max  int
	byID map[int32]*fetchSession
	lru  *list.List // front: most recently used
	ids  *rand.Rand
}

func newSessionCache(max int) *sessionCache {
	return &sessionCache{max: max, byID: map[int32]*fetchSession{}, lru: list.New(),
		ids: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

func (c *sessionCache) create() *fetchSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max <= 0 {
		return nil
	}
	for len(c.byID) >= c.max {
		oldest := c.lru.Back()
		s := oldest.Value.(*fetchSession)
		c.lru.Remove(oldest)
		delete(c.byID, s.id)
	}
	var id int32
	for id == 0 || c.byID[id] != nil {
		id = c.ids.Int32()
	}
	s := &fetchSession{id: id, index: map[partKey]*fetchPart{}} // the fetch that creates it moves the epoch to 1
	s.elem = c.lru.PushFront(s)
	c.byID[id] = s
	return s
}

func (c *sessionCache) get(id int32) *fetchSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.byID[id]
	if s != nil {
		c.lru.MoveToFront(s.elem)
	}
	return s
}

func (c *sessionCache) remove(id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.byID[id]; s != nil {
		c.lru.Remove(s.elem)
		delete(c.byID, id)
	}
}
