package broker

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/weir-dev/weir/internal/storage"
)

// metaState is the broker's durable metadata: the cluster's identity, the
// topics and their configs, and the producer id high-water mark. It is one
// small checksummed JSON file, replaced atomically on every change. (The
// replicated controller of a later issue takes this role in a cluster.)
type metaState struct {
	Version        int         `json:"version"`
	ClusterID      string      `json:"cluster_id"`
	NextProducerID int64       `json:"next_producer_id"`
	Topics         []topicMeta `json:"topics"`
}

type topicMeta struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

const (
	metaDir      = "meta"
	metaFile     = "metadata.json"
	metaVersion  = 1
	topicsSubdir = "topics"
)

func loadMeta(dataDir string) (*metaState, error) {
	path := filepath.Join(dataDir, metaDir, metaFile)
	body, err := storage.ReadSealed(path)
	if os.IsNotExist(err) {
		id, err := newUUID()
		if err != nil {
			return nil, err
		}
		return &metaState{Version: metaVersion, ClusterID: base64.RawURLEncoding.EncodeToString(id[:])}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("metadata file %s is damaged (%w); restore it from a backup or move the data directory aside", path, err)
	}
	var m metaState
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("decode metadata %s: %w", path, err)
	}
	if m.Version != metaVersion {
		return nil, fmt.Errorf("metadata %s has version %d; this build reads version %d", path, m.Version, metaVersion)
	}
	return &m, nil
}

func saveMeta(dataDir string, m *metaState) error {
	dir := filepath.Join(dataDir, metaDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create metadata dir: %w", err)
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return storage.WriteFileAtomic(dir, metaFile, storage.Seal(body))
}

func newUUID() ([16]byte, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return id, fmt.Errorf("random id: %w", err)
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id, nil
}

func parseTopicID(s string) ([16]byte, error) {
	var id [16]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, fmt.Errorf("bad topic id %q", s)
	}
	copy(id[:], b)
	return id, nil
}
