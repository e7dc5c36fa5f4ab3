// Package lint holds tests that keep the code base's shape: which packages
// may import which.
package lint

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/weir-dev/weir/"

// allowed lists, for each package (or package prefix ending in "/"), the
// internal packages it may import. Dependencies point one way: protocol →
// services → storage; leaves import nothing of ours.
var allowed = map[string][]string{
	"internal/record":            {},
	"internal/clock":             {},
	"internal/config":            {},
	"internal/api":               {},
	"internal/lint":              {},
	"internal/group":             {"internal/clock"},
	"internal/storage":           {"internal/record", "internal/clock"},
	"internal/broker":            {"internal/storage", "internal/record", "internal/clock", "internal/group", "internal/cluster", "internal/replication"},
	"internal/kafka":             {"internal/broker", "internal/storage", "internal/record", "internal/clock", "internal/group"},
	"internal/server":            {"internal/api", "internal/broker", "internal/clock", "internal/config", "internal/kafka", "internal/cluster", "internal/streams", "internal/transform"},
	"internal/server/servertest": {"internal/server", "internal/config"},
	"internal/cli":               {"internal/cli/"},
	"internal/cli/serve":         {"internal/config", "internal/server"},
	// Replication: node-to-node Raft transport.
	"internal/replication/transport": {"internal/clock"},
	"internal/replication":           {"internal/replication/transport", "internal/storage", "internal/record", "internal/clock"},
	// Cluster: the controller and its metadata, on the replication engine.
	"internal/cluster": {"internal/replication", "internal/replication/transport", "internal/storage", "internal/record", "internal/clock"},
	// Client commands talk to brokers over the network only.
	"internal/cli/": {"internal/cli/", "internal/record"},
	// Producing and consuming can run a module at the edge.
	"internal/cli/produce": {"internal/cli/", "internal/record", "internal/transform"},
	"internal/cli/consume": {"internal/cli/", "internal/record", "internal/transform"},
	// Transform commands check modules locally and use the catalog.
	"internal/cli/module":    {"internal/cli/", "internal/record", "internal/hub", "internal/transform"},
	"internal/cli/transform": {"internal/cli/", "internal/record", "internal/hub", "internal/transform"},
	"internal/cli/clitest":   {"internal/cli", "internal/cli/", "internal/server/servertest", "internal/config"},
	"cmd/weir":               {"internal/cli"},
	// The fault-injection harness drives weir processes over Kafka, HTTP
	// and signals only; it imports none of the broker.
	"internal/chaos": {},
	// Transforms: the WebAssembly runtime and the host ABI.
	"internal/transform":               {"internal/record"},
	"internal/transform/transformtest": {},
	// The transform catalog (modules, definitions, status) over Kafka, and
	// the engine that runs deployed transforms on partition leaders.
	"internal/hub":     {"internal/transform"},
	"internal/streams": {"internal/hub", "internal/transform", "internal/record"},
	// The guest SDK and the example modules are built for wasip1 by users
	// outside this module: they may import nothing internal.
	"sdk/":      {"sdk/"},
	"examples/": {"sdk/"},
}

func rulesFor(pkg string) ([]string, bool) {
	if r, ok := allowed[pkg]; ok {
		return r, true
	}
	best := ""
	for k := range allowed {
		if strings.HasSuffix(k, "/") && strings.HasPrefix(pkg, k) && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return nil, false
	}
	return allowed[best], true
}

func permitted(rules []string, dep string) bool {
	for _, r := range rules {
		if dep == r || (strings.HasSuffix(r, "/") && strings.HasPrefix(dep, r)) {
			return true
		}
	}
	return false
}

func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		if strings.HasPrefix(pkg, "bench/") {
			continue
		}
		rules, ok := rulesFor(pkg)
		if !ok {
			t.Errorf("package %s has no layering rule; add it to the table", pkg)
			continue
		}
		for _, dep := range fields[1:] {
			if !strings.HasPrefix(dep, module) {
				continue
			}
			dep = strings.TrimPrefix(dep, module)
			if !permitted(rules, dep) {
				t.Errorf("%s imports %s, which its layer may not", pkg, dep)
			}
		}
	}
}
