package group

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Describe handles DescribeGroups v0-v5. An unknown group is described as
// Dead with no members and no error, as Kafka does before v6. Member
// metadata and assignments are shown only while the group is Stable.
func (m *Manager) Describe(req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := kmsg.NewPtrDescribeGroupsResponse()
	resp.Version = req.Version
	for _, name := range req.Groups {
		resp.Groups = append(resp.Groups, m.describe(name, req.Version >= 3 && req.IncludeAuthorizedOperations))
	}
	return resp
}

func (m *Manager) describe(name string, includeOps bool) kmsg.DescribeGroupsResponseGroup {
	dg := kmsg.NewDescribeGroupsResponseGroup()
	dg.Group = name
	g, _, err := m.acquire(name, false)
	if err != nil {
		dg.ErrorCode = kerr.NotCoordinator.Code
		return dg
	}
	if includeOps {
		dg.AuthorizedOperations = allGroupOperations
	}
	if g == nil {
		dg.State = stateDead.String()
		return dg
	}
	defer g.mu.Unlock()
	dg.State = g.state.String()
	dg.ProtocolType = g.protocolType
	stable := g.state == stateStable
	if stable {
		dg.Protocol = g.protocol
	}
	for _, mem := range g.sortedMembers() {
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID = mem.id
		dm.InstanceID = mem.instanceID
		dm.ClientID = mem.clientID
		dm.ClientHost = mem.clientHost
		if stable {
			dm.ProtocolMetadata = mem.metadataFor(g.protocol)
			dm.MemberAssignment = mem.assignment
		}
		dg.Members = append(dg.Members, dm)
	}
	return dg
}

// List handles ListGroups v0-v5: every group, optionally filtered by state
// (v4+, case-insensitive) and by type (v5+; all groups here are "classic").
func (m *Manager) List(req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := kmsg.NewPtrListGroupsResponse()
	resp.Version = req.Version
	if m.closed.Load() {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	var states, types []string
	if req.Version >= 4 {
		states = req.StatesFilter
	}
	if req.Version >= 5 {
		types = req.TypesFilter
	}
	if len(types) > 0 && !containsFold(types, "classic") {
		return resp
	}
	for _, g := range m.snapshot() {
		g.mu.Lock()
		if !g.removed && (len(states) == 0 || containsFold(states, g.state.String())) {
			lg := kmsg.NewListGroupsResponseGroup()
			lg.Group = g.name
			lg.ProtocolType = g.protocolType
			lg.GroupState = g.state.String()
			lg.GroupType = "classic"
			resp.Groups = append(resp.Groups, lg)
		}
		g.mu.Unlock()
	}
	return resp
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// Delete handles DeleteGroups v0-v2: only Empty groups can be deleted
// (NON_EMPTY_GROUP); an unknown group is GROUP_ID_NOT_FOUND. Deleting a
// group deletes its offsets.
func (m *Manager) Delete(req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := kmsg.NewPtrDeleteGroupsResponse()
	resp.Version = req.Version
	seen := make(map[string]bool, len(req.Groups))
	for _, name := range req.Groups {
		if seen[name] {
			continue
		}
		seen[name] = true
		dg := kmsg.NewDeleteGroupsResponseGroup()
		dg.Group = name
		dg.ErrorCode = m.deleteGroup(name)
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

func (m *Manager) deleteGroup(name string) int16 {
	g, _, err := m.acquire(name, false)
	if err != nil {
		return kerr.NotCoordinator.Code
	}
	if g == nil {
		return kerr.GroupIDNotFound.Code
	}
	defer g.mu.Unlock()
	if g.state != stateEmpty {
		return kerr.NonEmptyGroup.Code
	}
	if err := g.delete(); err != nil {
		m.log.Warn("failed to delete group", "group", name, "err", err)
		return storeErrorCode(err, false)
	}
	return 0
}
