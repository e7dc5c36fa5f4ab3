// Package group is the classic (pre-KIP-848) Kafka consumer-group
// coordinator: membership and rebalancing (JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup), committed offsets (OffsetCommit, OffsetFetch, OffsetDelete,
// TxnOffsetCommit) and group administration (DescribeGroups, ListGroups,
// DeleteGroups).
//
// The Manager takes decoded kmsg requests and returns kmsg responses for the
// same version; it does no network I/O. Durable state goes through the Store
// the broker implements on the compacted __consumer_offsets log, and comes
// back at start-up through LoadGroup and LoadOffset.
//
// # Semantics
//
// The state machine is Kafka 3.x's GroupCoordinator: a group is Empty,
// PreparingRebalance, CompletingRebalance or Stable (Dead only as the answer
// for a group that does not exist). A rebalance waits until every known
// member has rejoined (and every member id handed out with
// MEMBER_ID_REQUIRED has been used or has expired), at most the largest
// rebalance timeout of the members; then dynamic members that did not rejoin
// are removed, the old leader is kept if it rejoined, the protocol is chosen
// by member votes, and the generation is bumped. The leader's SyncGroup
// installs the assignment, which is persisted before anyone is answered.
// Session timeouts evict members that neither heartbeat nor wait in a
// rebalance; members that take longer than the rebalance timeout to send
// SyncGroup are removed too.
//
// # Locking
//
// Each group has its own mutex (group.mu); the Manager's mutex (Manager.mu)
// guards only the map of groups. Store calls are made while holding the
// group's mutex, so a group's writes reach the log in the order its
// in-memory state changed, and a slow write (an fsync) stalls that group
// alone rather than every group. Lock order: group.mu, then Manager.mu (a
// group removes itself from the map while locked). Nothing holds two group
// locks at once. A Store must not call back into the Manager.
//
// Timers come from the injected clock; their callbacks lock the group and
// ignore themselves if the timer was stopped or superseded meanwhile.
// Blocked JoinGroup and SyncGroup calls wait on a buffered channel that a
// state transition fills while holding the group's mutex.
//
// # Persisted form
//
// Group metadata is a kmsg.GroupMetadataValue at version 3 (the first
// version with static-member instance ids): protocol type, generation,
// chosen protocol, leader, the time of the last state change, and per member
// its ids, client id and host, timeouts, the metadata it sent for the chosen
// protocol and its assignment. A nil value is a tombstone. Offsets are
// OffsetRecords; Offset -1 is a tombstone. Replay is last-write-wins per
// key, so a group whose metadata and offsets are all tombstoned is gone.
// Offsets staged by TxnOffsetCommit are persisted when staged, as the
// producer's transactional records (SaveTxnOffsets); the caller settles
// them with CompleteTxn when the transaction ends (a commit also writes
// them as ordinary commits), and a replay settles them with LoadTxnEnd at
// the transaction's marker.
package group
