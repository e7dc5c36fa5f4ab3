package kafka

import (
	"errors"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/broker"
)

// handler runs one request. It returns nil when no response is sent.
type handler func(c *conn, h *requestHeader, req kmsg.Request) *pending

type api struct {
	name     string
	key      int16
	min, max int16
	handle   handler
}

// apiTable is what the server implements; ApiVersions advertises exactly it.
type apiTable struct {
	byKey map[int16]*api
	list  []*api
}

func newAPITable() *apiTable {
	t := &apiTable{byKey: map[int16]*api{}}
	add := func(key, min, max int16, h handler) {
		a := &api{name: kmsg.NameForKey(key), key: key, min: min, max: max, handle: h}
		t.byKey[key] = a
		t.list = append(t.list, a)
	}
	// Versions: from the oldest that clients still in use send (kafka-go's
	// ApiVersions v0 and Metadata v1, sarama's Produce v3) to the newest
	// whose semantics are implemented here.
	add(0, 3, 12, handleProduce)
	add(1, 4, 16, handleFetch)
	add(2, 1, 8, handleListOffsets)
	add(3, 0, 12, handleMetadata)
	add(18, 0, 4, handleAPIVersions)
	add(19, 0, 7, handleCreateTopics)
	add(20, 0, 6, handleDeleteTopics)
	add(21, 0, 2, handleDeleteRecords)
	add(22, 0, 4, handleInitProducerID)
	add(8, 0, 9, handleOffsetCommit)
	add(9, 0, 9, handleOffsetFetch)
	add(10, 0, 4, handleFindCoordinator)
	add(11, 0, 9, handleJoinGroup)
	add(12, 0, 4, handleHeartbeat)
	add(13, 0, 5, handleLeaveGroup)
	add(14, 0, 5, handleSyncGroup)
	add(15, 0, 5, handleDescribeGroups)
	add(16, 0, 5, handleListGroups)
	add(23, 0, 4, handleOffsetForLeaderEpoch)
	add(24, 0, 3, handleAddPartitionsToTxn)
	add(25, 0, 3, handleAddOffsetsToTxn)
	add(26, 0, 5, handleEndTxn)
	add(27, 0, 1, handleWriteTxnMarkers)
	add(28, 0, 5, handleTxnOffsetCommit)
	add(32, 0, 4, handleDescribeConfigs)
	add(33, 0, 2, handleAlterConfigs)
	add(35, 1, 4, handleDescribeLogDirs)
	add(37, 0, 3, handleCreatePartitions)
	add(42, 0, 2, handleDeleteGroups)
	add(44, 0, 1, handleIncrementalAlterConfigs)
	add(47, 0, 0, handleOffsetDelete)
	add(60, 0, 2, handleDescribeCluster)
	add(61, 0, 0, handleDescribeProducers)
	add(65, 0, 0, handleDescribeTransactions)
	add(66, 0, 1, handleListTransactions)
	sort.Slice(t.list, func(i, j int) bool { return t.list[i].key < t.list[j].key })
	return t
}

func (t *apiTable) lookup(key, version int16) (*api, bool) {
	a, ok := t.byKey[key]
	if !ok || version < a.min || version > a.max {
		return a, false
	}
	if r := kmsg.RequestForKey(key); r == nil || version > r.MaxVersion() {
		return a, false
	}
	return a, true
}

// transactionVersion is the level of Kafka's transaction.version feature
// Weir runs: 2 is KIP-890 part 2 (Produce v12 and TxnOffsetCommit v5 add
// partitions and groups implicitly; EndTxn v5 bumps the epoch). Clients
// that predate it use the classic flow, which stays supported.
const transactionVersion = 2

func (s *Server) apiVersionsResponse(version int16) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(version)
	resp.SupportedFeatures = []kmsg.ApiVersionsResponseSupportedFeature{{Name: "transaction.version", MinVersion: 0, MaxVersion: transactionVersion}}
	resp.FinalizedFeaturesEpoch = 1
	level := int16(transactionVersion)
	if s.b != nil && s.b.Cluster() != nil {
		// In a cluster the transaction coordinator may be on another node
		// than a partition's leader; Produce's implicit adds (level 2)
		// would need it, so clients keep the classic flow.
		level = 0
	}
	resp.FinalizedFeatures = []kmsg.ApiVersionsResponseFinalizedFeature{{Name: "transaction.version", MinVersionLevel: level, MaxVersionLevel: level}}
	for _, a := range s.apis.list {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = a.key, a.min, a.max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	return resp
}

func (s *Server) unsupportedAPIVersions() kmsg.Response {
	resp := s.apiVersionsResponse(0)
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	return resp
}

func handleAPIVersions(c *conn, h *requestHeader, req kmsg.Request) *pending {
	return respond(c.s.apiVersionsResponse(h.version))
}

// errorCode maps a broker error onto the Kafka error code clients expect.
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	for _, m := range errorCodes {
		if errors.Is(err, m.err) {
			return m.code.Code
		}
	}
	return kerr.UnknownServerError.Code
}

var errorCodes = []struct {
	err  error
	code *kerr.Error
}{
	{broker.ErrUnknownTopicOrPartition, kerr.UnknownTopicOrPartition},
	{broker.ErrTopicExists, kerr.TopicAlreadyExists},
	{broker.ErrInvalidTopic, kerr.InvalidTopicException},
	{broker.ErrInvalidPartitions, kerr.InvalidPartitions},
	{broker.ErrInvalidReplication, kerr.InvalidReplicationFactor},
	{broker.ErrInvalidConfig, kerr.InvalidConfig},
	{broker.ErrInvalidRequest, kerr.InvalidRequest},
	{broker.ErrMessageTooLarge, kerr.MessageTooLarge},
	{broker.ErrCorruptMessage, kerr.CorruptMessage},
	{broker.ErrInvalidRecord, kerr.InvalidRecord},
	{broker.ErrInvalidTimestamp, kerr.InvalidTimestamp},
	{broker.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber},
	{broker.ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch},
	{broker.ErrInvalidTxnState, kerr.InvalidTxnState},
	{broker.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{broker.ErrUnsupportedForFormat, kerr.UnsupportedForMessageFormat},
	{broker.ErrStorage, kerr.KafkaStorageError},
	{broker.ErrBrokerShuttingDown, kerr.BrokerNotAvailable},
	{broker.ErrProducerFenced, kerr.ProducerFenced},
	{broker.ErrInvalidProducerMap, kerr.InvalidProducerIDMapping},
	{broker.ErrConcurrentTxns, kerr.ConcurrentTransactions},
	{broker.ErrInvalidTxnTimeout, kerr.InvalidTransactionTimeout},
	{broker.ErrNotLeader, kerr.NotLeaderForPartition},
	{broker.ErrNotCoordinator, kerr.NotCoordinator},
	{broker.ErrCoordinatorNotAvailable, kerr.CoordinatorNotAvailable},
	{broker.ErrTimedOut, kerr.RequestTimedOut},
}

var unknownTopicCode = kerr.UnknownTopicOrPartition.Code

// errorMessage is the human part of err for responses that carry one.
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}
