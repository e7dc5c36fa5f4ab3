package group

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// LoadGroup replays one group metadata record from __consumer_offsets at
// start-up, before serving; a later record for the group replaces an
// earlier one, and nil deletes the group (its offsets, if any remain, keep
// an Empty group alive). A loaded group with members is Stable, and each
// member's session starts now.
func (m *Manager) LoadGroup(name string, v *kmsg.GroupMetadataValue) {
	g, _, err := m.acquire(name, v != nil)
	if err != nil || g == nil {
		return
	}
	defer g.mu.Unlock()
	g.resetMembership()
	if v == nil {
		if len(g.offsets) == 0 && len(g.txn) == 0 {
			m.removeLocked(g)
		}
		return
	}
	g.protocolType = v.ProtocolType
	g.generation = v.Generation
	if v.Protocol != nil {
		g.protocol = *v.Protocol
	}
	g.stateTime = -1
	if v.Version >= 2 {
		g.stateTime = v.CurrentStateTimestamp
	}
	if g.protocol == "" && len(v.Members) > 0 {
		m.log.Warn("ignoring members of group record without a protocol", "group", name)
	} else {
		for _, vm := range v.Members {
			mem := &member{
				id:               vm.MemberID,
				clientID:         vm.ClientID,
				clientHost:       vm.ClientHost,
				rebalanceTimeout: vm.RebalanceTimeoutMillis,
				sessionTimeout:   vm.SessionTimeoutMillis,
				protocolType:     v.ProtocolType,
				protocols:        []protocol{{name: g.protocol, metadata: cloneBytes(vm.Subscription)}},
				assignment:       cloneBytes(vm.Assignment),
			}
			if v.Version < 1 {
				mem.rebalanceTimeout = vm.SessionTimeoutMillis
			}
			if v.Version >= 3 && vm.InstanceID != nil {
				id := *vm.InstanceID
				mem.instanceID = &id
			}
			g.addMember(mem, nil)
		}
	}
	if v.Leader != nil && g.members[*v.Leader] != nil {
		g.leader = *v.Leader
	}
	if len(g.members) > 0 {
		g.state = stateStable
	} else {
		g.protocol = ""
	}
	g.subscribed = g.computeSubscribed()
	for _, mem := range g.members {
		g.scheduleHeartbeat(mem)
	}
}

// resetMembership makes g a fresh Empty group that keeps its offsets.
func (g *group) resetMembership() {
	g.stopTimers()
	g.state = stateEmpty
	g.stateTime = -1
	g.generation = 0
	g.protocolType = ""
	g.protocol = ""
	g.leader = ""
	g.members = make(map[string]*member)
	g.static = make(map[string]string)
	g.pending = make(map[string]*timer)
	g.pendingSync = nil
	g.newMemberAdded = false
	g.joinInitial = false
	g.subscribed = nil
}

// LoadOffset replays one offset record at start-up; Offset -1 deletes.
func (m *Manager) LoadOffset(group string, r OffsetRecord) {
	g, created, err := m.acquire(group, r.Offset != -1)
	if err != nil || g == nil {
		return
	}
	defer g.mu.Unlock()
	if created {
		g.stateTime = -1 // unknown until a group record says
	}
	g.applyOffset(r)
	if g.vacant() {
		m.removeLocked(g)
	}
}

// LoadTxnOffset replays one offset record a transaction wrote (a
// transactional batch in __consumer_offsets): it is staged for producerID
// until LoadTxnEnd settles it.
func (m *Manager) LoadTxnOffset(group string, producerID int64, r OffsetRecord) {
	g, _, err := m.acquire(group, true)
	if err != nil || g == nil {
		return
	}
	defer g.mu.Unlock()
	g.stageTxnOffset(producerID, r)
}

// LoadTxnEnd replays a transaction marker of producerID: its staged offsets
// in every group become committed (commit) or are dropped (abort), without
// writing anything (the marker already made them durable).
func (m *Manager) LoadTxnEnd(producerID int64, commit bool) {
	for _, g := range m.snapshot() {
		g.mu.Lock()
		if staged, ok := g.txn[producerID]; ok && !g.removed {
			if commit {
				for tp, o := range staged {
					if cur, ok := g.offsets[tp]; ok && cur.seq > o.seq {
						continue
					}
					g.applyOffset(o.record(tp))
				}
			}
			delete(g.txn, producerID)
			if g.vacant() {
				m.removeLocked(g)
			}
		}
		g.mu.Unlock()
	}
}
