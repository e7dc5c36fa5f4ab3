package kafka

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/broker"
)

// Config resource types.
const (
	resourceTopic  = kmsg.ConfigResourceTypeTopic
	resourceBroker = kmsg.ConfigResourceTypeBroker
)

var errBrokerConfigReadOnly = fmt.Errorf("%w: broker settings come from the configuration file and cannot be changed at run time", broker.ErrInvalidRequest)

func (s *Server) brokerResource(name string) bool {
	return name == "" || name == strconv.Itoa(int(s.b.NodeID()))
}

func handleDescribeConfigs(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	resp.SetVersion(h.version)
	for _, rr := range req.Resources {
		res := kmsg.NewDescribeConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		var entries []broker.ConfigEntry
		var err error
		switch {
		case rr.ResourceType == resourceTopic:
			entries, err = c.s.b.DescribeTopicConfigs(rr.ResourceName)
		case rr.ResourceType == resourceBroker && c.s.brokerResource(rr.ResourceName):
			entries = c.s.b.BrokerConfigs()
		case rr.ResourceType == resourceBroker:
			err = fmt.Errorf("%w: broker %q is not this node", broker.ErrInvalidRequest, rr.ResourceName)
		default:
			err = fmt.Errorf("%w: resource type %d is not supported", broker.ErrInvalidRequest, rr.ResourceType)
		}
		if err != nil {
			res.ErrorCode = errorCode(err)
			res.ErrorMessage = errorMessage(err)
			resp.Resources = append(resp.Resources, res)
			continue
		}
		for _, e := range entries {
			if rr.ConfigNames != nil && !slices.Contains(rr.ConfigNames, e.Name) {
				continue
			}
			cfg := kmsg.NewDescribeConfigsResponseResourceConfig()
			cfg.Name = e.Name
			v := e.Value
			cfg.Value = &v
			cfg.ReadOnly = rr.ResourceType == resourceBroker
			cfg.IsDefault = e.Source == broker.SourceDefault
			cfg.Source = kmsg.ConfigSource(e.Source)
			cfg.ConfigType = kmsg.ConfigType(e.Type)
			if req.IncludeDocumentation {
				doc := e.Doc
				cfg.Documentation = &doc
			}
			if req.IncludeSynonyms {
				for _, syn := range e.Synonyms {
					ks := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
					ks.Name = syn.Name
					sv := syn.Value
					ks.Value = &sv
					ks.Source = kmsg.ConfigSource(syn.Source)
					cfg.ConfigSynonyms = append(cfg.ConfigSynonyms, ks)
				}
			}
			res.Configs = append(res.Configs, cfg)
		}
		resp.Resources = append(resp.Resources, res)
	}
	return respond(resp)
}

func handleAlterConfigs(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	resp.SetVersion(h.version)
	for _, rr := range req.Resources {
		res := kmsg.NewAlterConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		err := alterResource(rr.ResourceType, func() error {
			set := map[string]string{}
			for _, cfg := range rr.Configs {
				if cfg.Value != nil {
					set[cfg.Name] = *cfg.Value
				}
			}
			return c.s.b.AlterTopicConfigs(rr.ResourceName, set, req.ValidateOnly)
		})
		res.ErrorCode, res.ErrorMessage = errorCode(err), errorMessage(err)
		resp.Resources = append(resp.Resources, res)
	}
	return respond(resp)
}

func handleIncrementalAlterConfigs(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	resp.SetVersion(h.version)
	for _, rr := range req.Resources {
		res := kmsg.NewIncrementalAlterConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		err := alterResource(rr.ResourceType, func() error {
			var ops []broker.ConfigOp
			for _, cfg := range rr.Configs {
				op := broker.ConfigOp{Name: cfg.Name, Op: broker.ConfigOpType(cfg.Op)}
				if cfg.Value != nil {
					op.Value = *cfg.Value
				} else if op.Op != broker.OpDelete {
					return fmt.Errorf("%w: %s needs a value", broker.ErrInvalidConfig, cfg.Name)
				}
				ops = append(ops, op)
			}
			return c.s.b.IncrementalAlterTopicConfigs(rr.ResourceName, ops, req.ValidateOnly)
		})
		res.ErrorCode, res.ErrorMessage = errorCode(err), errorMessage(err)
		resp.Resources = append(resp.Resources, res)
	}
	return respond(resp)
}

// alterResource applies a config change to a topic; broker settings are
// read-only at run time and other resource types are not supported.
func alterResource(rtype kmsg.ConfigResourceType, alterTopic func() error) error {
	switch rtype {
	case resourceTopic:
		return alterTopic()
	case resourceBroker:
		return errBrokerConfigReadOnly
	default:
		return fmt.Errorf("%w: resource type %d is not supported", broker.ErrInvalidRequest, rtype)
	}
}

func handleDescribeLogDirs(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.DescribeLogDirsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	resp.SetVersion(h.version)
	b := c.s.b
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = b.DataDir()
	dir.TotalBytes, dir.UsableBytes = diskSpace(b.DataDir())
	want := map[string][]int32{}
	if req.Topics != nil {
		for _, t := range req.Topics {
			want[t.Topic] = t.Partitions
		}
	}
	for _, t := range b.Topics() {
		parts, ok := want[t.Name]
		if req.Topics != nil && !ok {
			continue
		}
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic = t.Name
		for _, p := range t.Partitions() {
			if req.Topics != nil && !slices.Contains(parts, p.Index()) {
				continue
			}
			dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			dp.Partition = p.Index()
			dp.Size = p.Size()
			dt.Partitions = append(dt.Partitions, dp)
		}
		dir.Topics = append(dir.Topics, dt)
	}
	resp.Dirs = []kmsg.DescribeLogDirsResponseDir{dir}
	return respond(resp)
}

func handleDescribeCluster(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.SetVersion(h.version)
	b := c.s.b
	if req.EndpointType != 0 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		return respond(resp)
	}
	resp.EndpointType = 1
	resp.ClusterID = b.ClusterID()
	brokers, controller := brokersAndController(c.s)
	resp.ControllerID = controller
	for _, mb := range brokers {
		br := kmsg.NewDescribeClusterResponseBroker()
		br.NodeID, br.Host, br.Port, br.Rack = mb.NodeID, mb.Host, mb.Port, mb.Rack
		resp.Brokers = append(resp.Brokers, br)
	}
	resp.ClusterAuthorizedOperations = authorizedOperationsUnset
	return respond(resp)
}
